"""The serving knowledge follows the vllm-ascend release: every Ascend row of env.yaml,
recipes.yaml and doctor.yaml names the releases it was verified for (or says it was not), and a
plan for one setup differs between releases exactly where those bounds say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_plan_seeds import CONFIGS, SEEDS, flag_map, seed_plan

from adaptgate.errors import InternalError
from adaptgate.inspect.releases import parse_release
from adaptgate.serve.doctor import diagnose
from adaptgate.serve.knowledge import (
    PlanContext,
    check_release_keyed,
    env_knowledge,
    is_ascend_row,
    recipes,
    source_text,
    when_holds,
)
from adaptgate.serve.models import LaunchPlan, PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.runbook import render_runbook
from adaptgate.serve.shell import engine_argv

SERVE = Path(__file__).parents[3] / "src" / "adaptgate" / "serve"
SEED_002 = SEEDS["seeds"][1]


def _plan_002(release: str, tmp_path: Path) -> LaunchPlan:
    seed = {**SEED_002, "plan": {**SEED_002["plan"], "release": release}}
    (tmp_path / release).mkdir()
    return seed_plan(seed, tmp_path / release)


def _env(plan: LaunchPlan) -> dict[str, str]:
    return {v.name: v.value for v in plan.env}


def _extra(plan: LaunchPlan) -> dict[str, Any]:
    flag = plan.flag("--additional-config")
    return dict(json.loads(flag.value or "{}")) if flag else {}


def _changed(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def test_seed_002_at_0_11_differs_from_0_18_where_the_data_says(tmp_path: Path) -> None:
    old, new = _plan_002("0.11.0rc2", tmp_path), _plan_002("0.18.0", tmp_path)
    env_old, env_new = _env(old), _env(new)
    # the v0.11 tutorials set OMP_NUM_THREADS=100 and recommend TASK_QUEUE_ENABLE=2: the plan
    # sets neither there; the q/k-norm kernel runs where the release does not fuse it (< 0.13)
    assert _changed(env_old, env_new) == {
        "OMP_NUM_THREADS",
        "TASK_QUEUE_ENABLE",
        "ADAPTGATE_QK_RMSNORM",
    }
    assert "OMP_NUM_THREADS" not in env_old and env_new["OMP_NUM_THREADS"] == "1"
    assert "TASK_QUEUE_ENABLE" not in env_old and env_new["TASK_QUEUE_ENABLE"] == "1"
    assert env_old["ADAPTGATE_QK_RMSNORM"] == "1" and "ADAPTGATE_QK_RMSNORM" not in env_new
    # FlashComm1's variable exists from v0.11.0rc2: both plans set it
    assert env_old["VLLM_ASCEND_ENABLE_FLASHCOMM1"] == env_new["VLLM_ASCEND_ENABLE_FLASHCOMM1"]
    assert flag_map(engine_argv(old, old.commands[0])) == flag_map(
        engine_argv(new, new.commands[0])
    )
    assert old.release == "0.11.0rc2" and new.release == "0.18.0"


def test_keys_that_do_not_exist_in_a_release_are_not_planned(tmp_path: Path) -> None:
    v010, v023, v026 = (_plan_002(r, tmp_path) for r in ("0.10.2rc1", "0.23.0", "0.26.0rc1"))
    extra = {"0.10": _extra(v010), "0.23": _extra(v023), "0.26": _extra(v026)}
    # v0.10.2rc1 has neither VLLM_ASCEND_ENABLE_FLASHCOMM1 nor enable_cpu_binding nor
    # weight_prefetch_config (all first in v0.11.0rc2)
    assert "VLLM_ASCEND_ENABLE_FLASHCOMM1" not in _env(v010)
    assert "enable_cpu_binding" not in extra["0.10"]
    assert "weight_prefetch_config" not in extra["0.10"]
    # from v0.20 the additional_config key replaces the deprecated variable
    assert "VLLM_ASCEND_ENABLE_FLASHCOMM1" not in _env(v023)
    assert extra["0.23"]["enable_flashcomm1"] is True
    # weight prefetch was removed in v0.24.0rc1 (PR #11949)
    assert "weight_prefetch_config" in extra["0.23"]
    assert "weight_prefetch_config" not in extra["0.26"]


def test_glm_fusion_config_only_where_the_release_reads_it(tmp_path: Path) -> None:
    def extra(release: str) -> dict[str, Any]:
        options = PlanOptions(
            config_path=CONFIGS / "GLM-4.7-FP8.json",
            target="ascend-a2",
            device="910b3",
            devices=8,
            release=release,
        )
        return _extra(build_plan(options))

    # AscendFusionConfig is first in v0.14.0rc1
    assert "ascend_fusion_config" not in extra("0.11.0rc2")
    assert extra("0.18.0rc1")["ascend_fusion_config"] == {"fusion_ops_gmmswigluquant": False}


def _ctx_002(release: str | None) -> PlanContext:
    return PlanContext(
        target="ascend-a2",
        family="qwen3_moe",
        ranks=8,
        tp=8,
        moe=True,
        int8=True,
        release=parse_release(release) if release else None,
    )


@pytest.mark.parametrize("pair", [("0.11.0rc2", "0.18.0"), ("0.18.0", "0.23.0")])
def test_the_env_difference_is_exactly_the_rows_bounds(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    """The env.yaml rows whose `when` holds at one release and not the other are the whole
    difference between the two plans (kernels.yaml adds its own ADAPTGATE_* variables)."""
    rows = env_knowledge()["variables"]
    by_data = [
        {r["name"]: (str(r["value"]), r["reason"]) for r in rows if when_holds(r.get("when"), c)}
        for c in (_ctx_002(pair[0]), _ctx_002(pair[1]))
    ]
    expected = _changed(*by_data)
    assert expected  # the bounds do separate these releases
    plans = [
        {
            v.name: (v.value, v.reason.text)
            for v in _plan_002(r, tmp_path).env
            if v.name in by_data[i]
        }
        for i, r in enumerate(pair)
    ]
    assert plans == by_data
    assert _changed(*plans) == expected


def _ascend_rows() -> list[tuple[str, dict[str, Any], str | None]]:
    env, rec = env_knowledge(), recipes()
    doctor = yaml.safe_load((SERVE / "doctor.yaml").read_text("utf-8"))["signatures"]
    rows = [("env.yaml", r, source_text(env, r.get("source"))) for r in env["variables"]]
    rows += [
        ("recipes.yaml", r, source_text(rec, r.get("source"))) for r in rec["additional_config"]
    ]
    rows += [("doctor.yaml", r, r.get("source")) for r in doctor]
    return [row for row in rows if is_ascend_row(row[1])]


def test_every_ascend_row_is_release_keyed_or_says_it_is_not_verified() -> None:
    rows = _ascend_rows()
    assert len(rows) >= 25
    bounded = 0
    for name, row, source in rows:
        bounds = (row.get("when") or {}).get("releases", row.get("releases"))
        if bounds is None:
            assert "not verified" in (source or ""), (name, row)
            continue
        bounded += 1
        # the source names the tags it was read at
        assert source and "v0." in source, (name, row)
    assert bounded >= 20
    assert not any("vllm-ascend v0.18.0 " in (s or "") for _, _, s in rows)


def test_the_schema_check_accepts_and_rejects_rows() -> None:
    ascend = {"name": "X", "when": {"platform": "ascend"}, "reason": "r"}
    check_release_keyed(
        "t", {**ascend, "when": {"platform": "ascend", "releases": ["0.11", None]}}, "s"
    )
    check_release_keyed("t", ascend, "seed notes: not verified per vllm-ascend release")
    check_release_keyed("t", {"name": "Y", "when": {"platform": "cpu"}}, None)
    with pytest.raises(InternalError, match="no `releases` bounds"):
        check_release_keyed("t", ascend, "vllm-ascend docs")
    with pytest.raises(InternalError, match="no `releases` bounds"):
        check_release_keyed("t", {"id": "z", "engine": "vllm-ascend"}, None)
    for bad in (["0.11"], ["0.20", "0.11"], ["0.11", "0.11"], ["eleven", None], "0.11"):
        with pytest.raises(InternalError, match=r"\[min, max\)"):
            check_release_keyed("t", {**ascend, "when": {"releases": bad}}, "s")


def test_doctor_says_when_an_entry_was_not_verified_for_the_release() -> None:
    log = "ValueError: fp8 quantization is currently not supported in npu."
    inside = diagnose(log, ascend_release="0.18.0").top
    outside = diagnose(log, ascend_release="0.23.0").top
    assert inside is not None and outside is not None
    assert "not for" not in inside.cause.text
    assert outside.cause.text.endswith(
        "(this entry was verified for vllm-ascend 0.10 up to before 0.21, not for 0.23.0)"
    )
    # the pre-v0.15 wording of a missing quant_model_description.json
    top = diagnose("ValueError: Cannot find the config file for ascend").top
    assert top is not None and top.id == "modelslim_config_missing"


def test_the_plan_records_which_release_and_why(tmp_path: Path) -> None:
    asked = _plan_002("0.11.0rc2", tmp_path)
    assert asked.release_reason.text == "vllm-ascend 0.11.0rc2: --release 0.11.0rc2"
    newest = build_plan(
        PlanOptions(config_path=CONFIGS / "Qwen3-8B.json", target="ascend-a2", devices=1)
    )
    assert "the newest known release" in newest.release_reason.text
    assert f"| release chosen | {newest.release_reason}" in render_runbook(newest)
    # plan.json written before the field existed still loads
    old = json.loads(asked.model_dump_json())
    del old["release_reason"]
    assert LaunchPlan.model_validate(old).release_reason.text == ""


def test_a_context_without_a_release_gets_no_release_bounded_row() -> None:
    ctx = _ctx_002(None)
    names = {r["name"] for r in env_knowledge()["variables"] if when_holds(r.get("when"), ctx)}
    assert "VLLM_ASCEND_ENABLE_FLASHCOMM1" not in names
