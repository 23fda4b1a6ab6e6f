"""issue 19: the serve gate's sentences in a zh report -- the plan's flag, variable, container,
operator and layout reasons, the stage reasons and the doctor's diagnoses -- hold no English
sentence once built by the current code (the fixture runs hold strings of the old code)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from report_runs import make_run_dir
from test_zh_no_english import english_runs

from adaptgate.messages import Message, message
from adaptgate.report.render import write_report
from adaptgate.serve.doctor import diagnose
from adaptgate.serve.models import LaunchPlan, PlanOptions
from adaptgate.serve.plan import build_plan

CONFIGS = Path(__file__).parents[2] / "data" / "configs"
SECTION = re.compile(r"^## 5\. .*?(?=^## 6\. )", re.S | re.M)
TROUBLE = re.compile(r"^### 11\.\d+ 问题排查.*?(?=^### )", re.S | re.M)  # the doctor's table


def _zh_report(
    tmp_path: Path,
    plan: LaunchPlan,
    diagnosis: dict[str, Any] | None = None,
    stage_b: Message | None = None,
) -> str:
    ready = message("serve.ready", seconds=44.91)
    if stage_b is None:
        stage_b = message("serve.kv_reported", before=ready, reported=28125324, predicted=28802176)
    gate_reason = message("serve.stage", stage="Stage B", reason=stage_b)
    dumped = plan.model_dump(mode="json")

    def edit(record: dict[str, Any]) -> None:
        gate = next(g for g in record["gates"] if g["name"] == "serve")
        gate.update(reason=gate_reason.text, reason_id=gate_reason.id)
        gate["reason_params"] = gate_reason.params
        result = gate["result"]
        result["plan"] = dumped
        result["stage_a"].update(plan=dumped, reason=ready.said.model_dump())
        result["stage_b"].update(plan=dumped, reason=stage_b.said.model_dump())
        if diagnosis is not None:
            result["stage_b"]["diagnosis"] = diagnosis

    run = make_run_dir(tmp_path, edit=edit)
    return write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")


PLANS = {
    "dense-a2": PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="ascend-a2"),
    "dense-a2-kernel": PlanOptions(
        config_path=CONFIGS / "Qwen3-8B.json", target="ascend-a2", release="0.11.0rc2"
    ),
    "moe-a2-ep": PlanOptions(
        config_path=CONFIGS / "Qwen3-235B-A22B.json", target="ascend-a2", devices=8, nodes=2
    ),
    "mtp-a3": PlanOptions(config_path=CONFIGS / "GLM-4.7-FP8.json", target="ascend-a3", devices=16),
    "cuda": PlanOptions(config_path=CONFIGS / "Qwen3-30B-A3B.json", target="cuda", devices=2),
}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_the_serve_section_of_a_plan_built_now_holds_no_english_sentence(
    tmp_path: Path, name: str
) -> None:
    md = _zh_report(tmp_path, build_plan(PLANS[name]))
    section = SECTION.search(md)
    assert section is not None
    assert "环境变量说明" in section.group() or name == "cuda"
    assert english_runs(section.group()) == []


@pytest.mark.parametrize("fmt", ["fp8_block", "bf16"])
def test_a_cpu_plan_holds_no_english_sentence(tmp_path: Path, tiny_model, fmt: str) -> None:  # type: ignore[no-untyped-def]
    plan = build_plan(PlanOptions(model=str(tiny_model(format=fmt)), target="cpu", cpu_amx=False))
    md = _zh_report(tmp_path, plan)
    section = SECTION.search(md)
    assert section is not None
    if fmt == "fp8_block":  # vLLM CPU's FP8 kernels need AMX: the plan serves the BF16 copy
        assert plan.route == "bf16" and plan.route_reason.id == "serve.route_cpu_no_amx"
        assert "AMX tile" in section.group()
    else:
        assert "线性层：unquantized" in section.group()
    assert english_runs(section.group()) == []


def test_a_failed_stage_reason_and_its_diagnosis_render_in_chinese(tmp_path: Path) -> None:
    log = "ValueError: Failed to find a kernel that can implement the ScaledMM linear layer"
    diag = diagnose(log)
    assert diag.top is not None and diag.top.id == "cpu_fp8_needs_amx"
    reason = message(
        "serve.diagnosed",
        error=message("serve.engine_failed"),
        title=diag.top.title,
        fix=diag.top.fix,
    )
    assert reason.text.startswith("vLLM's engine failed to start (its API process did not exit)")
    assert "-- fix: serve the BF16 dequantization" in reason.text
    md = _zh_report(
        tmp_path,
        build_plan(PLANS["dense-a2"]),
        diagnosis=diag.model_dump(mode="json"),
        stage_b=reason,
    )
    trouble = TROUBLE.search(md)
    assert trouble is not None and "AMX" in trouble.group()
    assert english_runs(trouble.group()) == []
    verdicts = [line for line in md.splitlines() if "Stage B 结果：vLLM 引擎启动失败" in line]
    assert verdicts and all(english_runs(line) == [] for line in verdicts)


@pytest.mark.parametrize("source", ["run_full.json", "run_cpu.json"])
def test_the_oom_ladder_names_the_launch_utilization_or_leaves_the_step_out(
    tmp_path: Path, source: str
) -> None:
    """The review's "--gpu-memory-utilization(当前 -)": the value is the plan's flag (the settings
    hold it only when given); vLLM CPU has no such flag, so its ladder has no such step."""
    run = make_run_dir(tmp_path, source=source)
    md = write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")
    assert "当前 -" not in md
    step = "调整 --gpu-memory-utilization(当前 0.9)"
    assert (step in md) == (source == "run_full.json")
