"""issue 19: the sentences inspect, convert and kvcache record render in the zh report with no
English left. The fixture runs hold strings the earlier code wrote; these tests put results
built by today's code into a fixture run and look at the sections that show them: every run of
English words left in those lines (report_language.english_runs, line by line) must not be a
piece of the English of a sentence the gate recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_language import english_runs
from report_runs import make_run_dir

from adaptgate.checkpoint import open_checkpoint
from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.models import InspectOptions, InspectResult
from adaptgate.kvcache.formats import KV_FORMATS
from adaptgate.kvcache.gate import Plan
from adaptgate.kvcache.scales import attention_prefixes, checkpoint_scales
from adaptgate.kvcache.verdict import reason_text
from adaptgate.messages import Message, Said, message
from adaptgate.metrics.limits import Check
from adaptgate.report.render import write_report


def _zh(tmp_path: Path, source: str, edit: Callable[[dict[str, Any]], None]) -> str:
    run = make_run_dir(tmp_path, source=source, edit=edit)
    return write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")


def _gate(record: dict[str, Any], name: str) -> dict[str, Any]:
    gate: dict[str, Any] = next(g for g in record["gates"] if g["name"] == name)
    return gate


def _put_reason(gate: dict[str, Any], reason: Message | Said) -> None:
    said = reason.said if isinstance(reason, Message) else reason
    gate.update(reason=said.text, reason_id=said.id, reason_params=said.params)


def _section(md: str, start: str, end: str) -> list[str]:
    lines = md.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i, line in enumerate(lines[first + 1 :], first + 1) if line.startswith(end))
    return lines[first:last]


def _left(lines: list[str], sentences: list[Said]) -> list[str]:
    """English runs in ``lines`` that come from ``sentences``."""
    english = [s.text for s in sentences]
    runs = {r for line in lines for r in english_runs(line)}
    return sorted(r for r in runs if any(r in text for text in english))


def _inspect_sentences(r: InspectResult) -> list[Said]:
    out = [r.reason, *([r.recommendation] if r.recommendation else [])]
    if r.support is not None:
        s = r.support
        out += [*s.errors, *s.notes, *([s.runs_as] if s.runs_as else [])]
    return out + [o.plan.summary for o in r.routes if o.plan]


@pytest.mark.parametrize(
    ("source", "fmt", "options"),
    [
        ("run_full.json", "fp8_block", {"target": "ascend-a2", "device": "910b4"}),
        ("run_cpu.json", "fp8_block", {"target": "cpu", "cpu_flags": frozenset({"avx2"})}),
        ("run_cpu_bf16.json", "bf16", {"target": "cpu"}),
    ],
)
def test_inspect_verdict_route_support_and_memory_plan_render_in_chinese(
    tmp_path: Path,
    tiny_model: Callable[..., Path],
    source: str,
    fmt: str,
    options: dict[str, Any],
):
    options = {"release": "0.18.0", **options}
    result = inspect_model(InspectOptions(model=str(tiny_model(format=fmt)), **options))

    def edit(record: dict[str, Any]) -> None:
        gate = _gate(record, "inspect")
        gate["result"] = result.model_dump(mode="json")
        _put_reason(gate, result.reason)

    md = _zh(tmp_path, source, edit)
    lines = _section(md, "## 2.", "## 3.") + [
        line for line in md.splitlines() if line.startswith("| 模型分析 |")
    ]
    sentences = _inspect_sentences(result)
    assert len(lines) > 10 and _left(lines, sentences) == []
    # what the lines were before: the same sentences left English
    en_lines = [s.text for s in sentences]
    assert _left(en_lines, sentences)


def _kv_format(record: dict[str, Any], model: Path) -> list[Said]:
    """The kvcache result's formats rebuilt with today's sentences for the tiny model's
    checkpoint (its scales, the format's switch, the verdict's reason from the recorded
    checks); returns those sentences."""
    ckpt = open_checkpoint(str(model))
    layers = int(ckpt.text_config()["num_hidden_layers"])
    prefixes = attention_prefixes(ckpt, layers)
    out: list[Said] = []
    for f in _gate(record, "kvcache")["result"]["formats"]:
        fmt = KV_FORMATS.get(f["format"])
        notes = checkpoint_scales(fmt, ckpt, prefixes, channels=128).notes
        checks = [Check.model_validate(c) for c in f["checks"]]
        reason = reason_text(f["verdict"], checks, f["layers_at_risk"], list(notes))
        f.update(
            reason=reason.model_dump(mode="json"),
            how_enabled=fmt.how_enabled.model_dump(mode="json"),
        )
        f["scales"]["notes"] = [n.model_dump(mode="json") for n in notes]
        out += [reason, fmt.how_enabled, *notes]
    return out


def test_kvcache_reasons_scales_and_switches_render_in_chinese(
    tmp_path: Path, tiny_model: Callable[..., Path]
):
    model = tiny_model(format="fp8_block")
    sentences: list[Said] = []

    def edit(record: dict[str, Any]) -> None:
        sentences.extend(_kv_format(record, model))

    md = _zh(tmp_path, "run_full.json", edit)
    lines = _section(md, "## 9.", "## 10.")
    fp8 = next(s for s in sentences if s.text.startswith("every limit met"))
    # run.json keeps the English it always held
    assert fp8.text == (
        "every limit met -- 2 of 2 layers have no stored scales (e.g. layer 0): the engine uses 1.0"
    )
    assert "各项限值均满足；2 层中有 2 层在权重中没有缩放因子（如第 0 层）：引擎使用 1.0" in md
    assert _left(lines, sentences) == []
    assert _left([s.text for s in sentences], sentences)


@pytest.mark.parametrize(
    ("plan", "english"),
    [
        (
            Plan(
                ["fp8_e4m3"],
                message(
                    "kvcache.pinned_and",
                    dtype="fp8_e4m3",
                    why=message("kvcache.declared", format="int8_c8"),
                ),
            ),
            "launching with --kv-cache-dtype fp8_e4m3; the checkpoint declares a int8_c8 KV cache",
        ),
        (
            Plan(None, message("kvcache.no_quantized_cache", variable="ADAPTGATE_KVCACHE")),
            "the plan keeps a bf16 KV cache (the checkpoint declares no quantized cache); set "
            "ADAPTGATE_KVCACHE=1 to test FP8/INT8 caches anyway",
        ),
    ],
)
def test_the_kvcache_gate_reason_renders_in_chinese(tmp_path: Path, plan: Plan, english: str):
    assert plan.why.text == english
    reason = message(
        "kvcache.verdict",
        why=plan.why,
        verdicts="fp8_e4m3 SAFE",
        recommendation="vLLM: --kv-cache-dtype fp8_e4m3",
    )

    def edit(record: dict[str, Any]) -> None:
        gate = _gate(record, "kvcache")
        _put_reason(gate, reason if plan.formats else plan.why)
        if not plan.formats:
            gate.update(status="SKIPPED", result=None, summary={}, artifacts=[])

    md = _zh(tmp_path, "run_full.json", edit)
    lines = [line for line in md.splitlines() if "KV Cache" in line]
    assert lines and _left(lines, [reason.said, plan.why.said]) == []


def test_the_summary_says_which_route_was_deployed_and_why(tmp_path: Path):
    recommendation = message("inspect.route_unplanned", title=message("inspect.title_bf16"))

    def edit(record: dict[str, Any]) -> None:
        gate = _gate(record, "inspect")
        gate["result"]["recommendation"] = recommendation.said.model_dump(mode="json")
        gate["result"]["recommended"] = "bf16"

    run = make_run_dir(tmp_path, source="run_full.json", edit=edit)
    en, zh = (
        p.read_text(encoding="utf-8")
        for p in write_report(run, formats=("md",), langs=("en", "zh"))
    )
    said = (
        "Deployed: the w8a8-dynamic conversion (W8A8_DYNAMIC, route native); inspect's route for "
        "the source checkpoint was bf16: dequantize to BF16; no --device given, memory not checked"
    )
    assert said in en
    assert (
        "实际部署：转换后的 w8a8-dynamic 权重（W8A8_DYNAMIC，部署路线 native）；"
        "inspect 对原始权重给出的路线为 bf16：反量化为 BF16；未给出 --device，未检查内存"
    ) in zh
    # a serve that did not pass: the planned route, and no claim that it was deployed
    cpu = make_run_dir(tmp_path, name="cpu", source="run_cpu.json")
    cpu_zh = write_report(cpu, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")
    assert "未完成部署（服务启动：失败）；规划的部署路线为 bf16（FP8_BLOCK）" in cpu_zh
