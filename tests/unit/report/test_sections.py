"""What each section shows, from run.json alone."""

from __future__ import annotations

import json

from adaptgate.pipeline.record import RunRecord
from adaptgate.report.markdown import render_markdown
from adaptgate.report.render import write_report
from adaptgate.report.sections.reproduce import reproduce_command


def _md(run_dir, lang="en"):
    return write_report(run_dir, formats=("md",), langs=(lang,))[0].read_text()


def _gate(record, name):
    return next(g for g in record["gates"] if g["name"] == name)


def test_sections_follow_the_seed_order(full_run):
    md = _md(full_run)
    titles = [line for line in md.splitlines() if line.startswith("## ")]
    assert titles == [
        "## 1. Verdict summary",
        "## 2. Model specification",
        "## 3. Environment",
        "## 4. Conversion",
        "## 5. Service launch",
        "## 6. Smoke test",
        "## 7. Precision",
        "## 8. KV cache",
        "## 9. Performance",
        "## 10. Notes, risks and troubleshooting",
        "## 11. Reproduce",
    ]
    zh = _md(full_run, "zh")
    for title in (
        "模型规格",
        "验证环境",
        "服务启动",
        "精度验证",
        "性能参考",
        "注意事项",
        "复现命令",
    ):
        assert f". {title}" in zh


def test_a_skipped_gate_shows_its_reason_and_a_missing_gate_is_skipped(make_run):
    def drop_bench(record):
        record["gates"] = [g for g in record["gates"] if g["name"] != "bench"]

    md = _md(make_run(edit=drop_bench))
    reason = "the launch plan uses --kv-cache-dtype auto (a bf16 cache): nothing to check"
    assert f"| KV cache | SKIPPED | {reason} |" in md
    assert f"- KV cache: **SKIPPED** - {reason}" in md
    assert "| Benchmark | SKIPPED | not run: no record in run.json" in md
    zh = _md(make_run("zh", drop_bench), "zh")
    assert f"| KV Cache 验证 | 跳过 | {reason} |" in zh  # the gate's reason, as written
    assert "| 性能测试 | 跳过 | 未执行:run.json 中无此门禁记录" in zh


def test_a_failed_gate_is_said_up_front(make_run):
    def fail_precision(record):
        gate = _gate(record, "precision")
        gate["status"] = "FAIL"
        gate["reason"] = "layer.1 cosine 0.41 < 0.99: scales of layer 1 are wrong"
        gate["result"]["verdict"] = "FAIL"
        gate["result"]["checks"][-1]["passed"] = False

    md = _md(make_run(edit=fail_precision))
    head = md.split("## 1.")[0]
    assert "Overall: **FAIL**" in head
    assert "Precision FAIL: layer.1 cosine 0.41 < 0.99: scales of layer 1 are wrong" in head
    assert "| Precision | **FAIL** |" in md
    assert "### 7.1 Checks that failed" in md
    assert "- **Precision: FAIL** - layer.1 cosine 0.41" in md  # notes list the failure


def test_precision_has_one_column_per_compared_pair(make_run):
    def two_pairs(record):
        gate = _gate(record, "precision")
        pair = gate["result"]
        served = {
            "kind": "precision",
            "model": "qwen3-tiny",
            "reference": pair["reference"],
            "metrics": {"exact_match_rate": 0.9375, "first_mismatch_in_topk": 1.0,
                        "topk_kl_mean": 0.00123},
            "checks": [{"subject": "served", "metric": "topk_kl_mean", "value": 0.00123,
                        "bound": "max", "threshold": 0.005, "source": "s", "passed": True}],
            "verdict": "PASS",
        }  # fmt: skip
        gate["result"] = {"kind": "precision-gate", "compare": pair, "served": served}

    md = _md(make_run(edit=two_pairs))
    header = next(line for line in md.splitlines() if line.startswith("| Metric | cpu float32"))
    assert header.count("|") == 4  # metric + two pairs
    assert "served `qwen3-tiny` vs cpu float32" in header
    assert "| served topk_kl_mean | - | 0.00123 (≤ 0.005 ✓) |" in md
    assert "| served exact_match_rate | - | 93.75% |" in md
    assert "| **Verdict** | **PASS** | **PASS** |" in md


def test_serve_shows_the_command_parameters_with_reasons_and_stages(full_run):
    md = _md(full_run)
    record = json.loads((full_run / "run.json").read_text())
    plan = _gate(record, "serve")["result"]["plan"]
    assert "```bash\nexport PYTORCH_NPU_ALLOC_CONF=expandable_segments:True" in md
    assert f"vllm serve {plan['served_path']} \\\n" in md
    for flag in plan["flags"]:
        assert f"| `{flag['flag']}` |" in md and flag["reason"].split("`")[0] in md
    assert "| Item | Stage A (dummy weights) | Stage B (real weights) |" in md
    assert "| Startup time | 38.2 s | 44.9 s |" in md
    # the doctor's finding is in the troubleshooting table
    assert "| aclInit error 107001: `RuntimeError: aclInit failed, error code 107001` |" in md


def test_smoke_separates_protocol_from_quality_checks(full_run):
    md = _md(full_run)
    protocol = md.index("### 6.1 Protocol checks")
    quality = md.index("### 6.2 Model-quality checks")
    assert protocol < md.index("| max_tokens honoured | PASS |") < quality
    assert quality < md.index("| 120 km in 2 hours | FAIL | no 60 in the answer |")
    assert "curl -sf http://127.0.0.1:8000/v1/models" in md


def test_bench_table_has_whole_run_and_steady_state_and_the_gate_plots(full_run):
    md = _md(full_run)
    record = json.loads((full_run / "run.json").read_text())
    result = _gate(record, "bench")["result"]
    m = result["metrics"]
    assert "| Metric | whole run | steady state |" in md
    assert f"| p99_ttft_ms | {m['ttft_ms']['p99']:,.2f} ms |" in md
    assert "![bench/distributions.png](bench/distributions.png)" in md
    assert f"Validity: **{result['validity']['status']}**" in md


def test_an_unknown_gate_is_rendered_from_its_result(make_run):
    def add_gate(record):
        record["gates"].insert(
            -1,
            {"name": "lint", "title": "Lint", "status": "PASS", "reason": "clean",
             "summary": {"warnings": 0}, "artifacts": [], "seconds": 0.5,
             "result": {"kind": "lint", "files": 12, "rules": ["E", "F"]}},
        )  # fmt: skip

    md = _md(make_run(edit=add_gate))
    section = md.split("## 10. Lint")[1].split("## 11.")[0]
    assert "| warnings | 0 |" in section and "| files | 12 |" in section
    assert "| rules | E, F |" in section


def test_reproduce_command_carries_every_non_default_setting(full_run):
    record = RunRecord.model_validate_json((full_run / "run.json").read_text())
    record.settings.max_model_len = 8192
    cmd = reproduce_command(record)
    assert cmd == (
        "adaptgate run /models/Qwen3-tiny-FP8 --target ascend-a2 --device 910b4 "
        "--max-model-len 8192 --run-dir runs/Qwen3-tiny-FP8-ascend-a2"
    )
    assert cmd in render_markdown(record)
