"""The convert gate inside a pipeline run: skip, convert, reuse, point later gates at the output."""

from __future__ import annotations

import json

import pytest

from adaptgate.convert.gate import ConvertGate
from adaptgate.gate import RunContext
from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.models import InspectOptions
from adaptgate.messages import render
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings


def _inspect_result(model, route):
    """inspect's typed result for ``model``, with ``route`` as its recommendation."""
    result = inspect_model(InspectOptions(model=str(model), target="ascend-a2"))
    return result.model_copy(update={"recommended": route}).model_dump(mode="json")


def _ctx(tmp_path, model, route=None, inspect_status=GateStatus.PASS) -> RunContext:
    settings = RunSettings(model=str(model), target="ascend-a2").with_environment()
    record = RunRecord(run_dir=str(tmp_path / "run"), settings=settings)
    if route is not ...:
        record.put(
            GateRecord(
                name="inspect",
                title="Inspect",
                status=inspect_status,
                reason="",
                result=_inspect_result(model, route),
            )
        )
    return RunContext(run_dir=tmp_path / "run", settings=settings, record=record)


def test_skipped_when_the_route_is_native(tmp_path, tiny_model, monkeypatch):
    monkeypatch.delenv("ADAPTGATE_CONVERT_TO", raising=False)
    outcome = ConvertGate().run(_ctx(tmp_path, tiny_model(format="fp8_block"), route="native"))
    assert outcome.status is GateStatus.SKIPPED
    assert outcome.reason == "inspect's route is native: no conversion needed"
    assert render(outcome.reason_id or "", outcome.reason_params, "zh") == (
        "inspect 给出的路线为 native：无需转换"
    )


def test_skipped_when_inspect_did_not_pass(tmp_path, tiny_model, monkeypatch):
    monkeypatch.delenv("ADAPTGATE_CONVERT_TO", raising=False)
    ctx = _ctx(
        tmp_path, tiny_model(format="fp8_block"), route="bf16", inspect_status=GateStatus.FAIL
    )
    assert ConvertGate().run(ctx).status is GateStatus.SKIPPED


@pytest.mark.parametrize(("route", "target"), [("bf16", "bf16"), ("w8a8_dynamic", "w8a8-dynamic")])
def test_converts_on_the_route_and_points_later_gates_at_it(
    tmp_path, tiny_model, monkeypatch, route, target
):
    monkeypatch.delenv("ADAPTGATE_CONVERT_TO", raising=False)
    src = tiny_model(arch="qwen3_moe", format="fp8_block", non_divisible=True, shards=2)
    ctx = _ctx(tmp_path, src, route=route)
    outcome = ConvertGate().run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    s = outcome.summary
    assert s["target"] == target and s["verify_problems"] == 0 and s["bytes_out"] > 0
    seconds = f"{s['seconds']:.1f}"
    gb = f"{s['bytes_in'] / 1e9:.2f} GB -> {s['bytes_out'] / 1e9:.2f} GB"
    assert outcome.reason == f"inspect's route is {route}: {gb} {target} in {seconds} s, verified"
    assert render(outcome.reason_id or "", outcome.reason_params, "zh") == (
        f"inspect 给出的路线为 {route}：{gb} {target}，耗时 {seconds} s，已校验"
    )
    assert s["output_dir"] == str((tmp_path / "run" / "convert" / "model").resolve())
    if target == "w8a8-dynamic":
        assert 0 < s["int8_rel_error"] < 0.02 and s["int8_worst_layer"].startswith("model.layers.")
    ctx.record.put(
        GateRecord(name="convert", title="Convert", status=outcome.status, reason="", summary=s)
    )
    assert ctx.model_path == s["output_dir"]
    again = ConvertGate().run(ctx)  # a finished, verified conversion is reused
    assert again.status is GateStatus.PASS and again.summary["seconds"] == s["seconds"]


def test_asked_for_by_environment(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "fp16")
    outcome = ConvertGate().run(_ctx(tmp_path, tiny_model(format="ct_fp8_tensor"), route=...))
    assert outcome.status is GateStatus.PASS and outcome.summary["target"] == "fp16"


def test_unknown_target_is_bad_input(tmp_path, tiny_model, monkeypatch):
    from adaptgate.errors import UsageError

    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "int4")
    with pytest.raises(UsageError):
        ConvertGate().run(_ctx(tmp_path, tiny_model(format="fp8_block"), route=...))


def test_extra_conversion_after_the_route(tmp_path, tiny_model, monkeypatch):
    monkeypatch.delenv("ADAPTGATE_CONVERT_TO", raising=False)
    ctx = _ctx(tmp_path, tiny_model(format="fp8_block"), route="bf16")
    ctx.settings = ctx.settings.model_copy(update={"convert_to": "+w8a8-dynamic"})
    outcome = ConvertGate().run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    s = outcome.summary
    run = tmp_path / "run" / "convert"
    # the route's conversion is the one later gates use; the extra one sits beside it, verified
    assert s["target"] == "bf16" and s["output_dir"] == str((run / "model").resolve())
    also = s["also"]["w8a8-dynamic"]
    assert also["output_dir"] == str((run / "model-w8a8-dynamic").resolve())
    assert also["verify_problems"] == 0 and 0 < also["int8_rel_error"] < 0.02
    assert (run / "model-w8a8-dynamic" / "quant_model_description.json").is_file()
    assert (run / "conversion-w8a8-dynamic.json").is_file()
    assert [p.name for p in outcome.artifacts] == [
        "conversion.json",
        "conversion-w8a8-dynamic.json",
    ]


def test_w8a8_takes_the_layout_the_run_target_serves(tmp_path, tiny_model, monkeypatch):
    """On cpu (vLLM) the W8A8 output is compressed-tensors; a modelslim output left in the run
    directory by a run for another target is not reused."""
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "w8a8-dynamic")
    ctx = _ctx(tmp_path, tiny_model(format="fp8_block"), route=...)
    first = ConvertGate().run(ctx)  # ascend-a2: msModelSlim's layout
    model = tmp_path / "run" / "convert" / "model"
    assert first.status is GateStatus.PASS and (model / "quant_model_description.json").is_file()
    ctx.settings = ctx.settings.model_copy(update={"target": "cpu"})
    outcome = ConvertGate().run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    assert outcome.result.format == "compressed-tensors"
    config = json.loads((model / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert not (model / "quant_model_description.json").exists()
