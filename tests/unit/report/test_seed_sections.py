"""The seed sections (references, quantization mapping, verification stages, troubleshooting
guide) and the labelled key results, rendered from run.json and the report's data files."""

from __future__ import annotations

import json
from importlib import resources

import yaml

from adaptgate.report.render import write_report


def _md(run, lang="en"):
    return write_report(run, formats=("md",), langs=(lang,))[0].read_text()


def test_key_results_are_labelled_with_units(cpu_bf16_run):
    md = _md(cpu_bf16_run)
    assert "kv_ratio=" not in md and "Reported / predicted KV: 100%" in md
    assert "KV cache reported: 1,048,576 tokens" in md
    assert "KV Cache 实际容量: 1,048,576 个 token" in _md(cpu_bf16_run, "zh")


def test_unmeasured_stages_say_not_verified(cpu_bf16_run, full_run):
    md = _md(cpu_bf16_run)
    assert "| Multimodal inference | not verified |" in md
    assert "| MTP | N/A | the model has no MTP layers |" in md
    assert "| Graph mode (compiled / CUDA graph) | verified |" not in md
    zh = _md(full_run, "zh")
    assert "| ACL Graph 图模式 | 未验证 |" in zh and "| Stage B 真实权重启动 | 通过 |" in zh


def test_references_quantmap_and_troubleshooting_come_from_run_and_data(full_run):
    md = _md(full_run, "zh")
    assert "`https://docs.vllm.ai/projects/ascend/zh-cn/v0.26.0rc1/installation.html`" in md
    assert "| `fp8-block` | 支持 | 无（A2/A3 不支持） |" in md  # dequantized at load since 0.26
    assert "export PYTORCH_NPU_ALLOC_CONF=expandable_segments:True" in md
    assert "故障排查:图捕获失败" in md


def test_troubleshooting_names_only_existing_doctor_signatures():
    doctor = resources.files("adaptgate.serve").joinpath("doctor.yaml").read_text("utf-8")
    ids = {s["id"] for s in yaml.safe_load(doctor)["signatures"]}
    data = resources.files("adaptgate.report").joinpath("data/troubleshooting.yaml")
    situations = yaml.safe_load(data.read_text("utf-8"))["situations"]
    assert {d for s in situations for d in s["doctor"]} <= ids
    assert all(
        step["zh"] and step["en"] and step["command"] for s in situations for step in s["steps"]
    )


def test_seed_disagreements_the_plan_recorded_render_in_the_notes(make_run):
    from report_language import english_runs
    from report_provenance import allowed_tokens, markdown_numbers, tokens

    from adaptgate.serve.knowledge import seed_disagreements
    from adaptgate.serve.models import SeedDisagreement

    # the plan of an FP8 Qwen model on Ascend records the seeds 000, 001 and 003 entries
    rows = seed_disagreements("/models/Qwen3-tiny-FP8", "ascend-a2")
    found = [SeedDisagreement.model_validate(d).model_dump() for d in rows]
    assert [d["seed"] for d in found] == ["000", "001", "003"]

    def edit(record):
        serve = next(g for g in record["gates"] if g["name"] == "serve")
        serve["result"]["plan"]["seed_disagreements"] = found

    run = make_run("seeds", edit=edit)
    md = _md(run)
    assert "Where adaptgate disagrees with the seed reports" in md
    assert "「反量化过程无精度损失(FP8→FP32→BF16)」" in md
    assert "E5M2 has the most exponent bits of the FP8 formats" in md
    zh = _md(run, "zh")
    assert "adaptgate 与种子报告的分歧" in zh
    # the position, reason and source in Chinese; the English gloss of the quote left out
    section = zh.split("adaptgate 与种子报告的分歧")[1].split("\n## ")[0]
    assert "E5M2 是 FP8 格式中指数位最多的" in section and "E5M2 has the most" not in section
    assert not english_runs(section), english_runs(section)
    # every number shown comes from run.json (the plan recorded the entries)
    record = json.loads((run / "run.json").read_text())
    allowed = allowed_tokens(record) | tokens(str(run))  # the report names its directory
    assert not markdown_numbers(md) - allowed, sorted(markdown_numbers(md) - allowed)
    # a run without the field (older run.json) has no such section
    assert "disagrees with the seed reports" not in _md(make_run())
