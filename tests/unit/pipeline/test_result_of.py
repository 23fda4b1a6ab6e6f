"""RunContext.result_of: an earlier gate's result as its typed model, or a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from adaptgate.errors import RunDirError
from adaptgate.gate import RunContext
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings


class Echo(BaseModel):
    value: int


def _ctx(tmp_path: Path, *gates: tuple[str, GateStatus, dict[str, object] | None]) -> RunContext:
    settings = RunSettings(model="m", target="cpu")
    record = RunRecord(run_dir=str(tmp_path), settings=settings)
    for name, status, result in gates:
        record.put(GateRecord(name=name, title=name, status=status, reason="", result=result))
    return RunContext(run_dir=tmp_path, settings=settings, record=record)


def test_a_passed_gates_result_is_typed_and_any_other_is_none(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ("alpha", GateStatus.PASS, {"value": 3}),
        ("beta", GateStatus.FAIL, {"value": 4}),
        ("gamma", GateStatus.PASS, None),
    )
    assert ctx.result_of("alpha", Echo) == Echo(value=3)
    assert ctx.result_of("beta", Echo) is None and ctx.passed("beta") is None
    assert ctx.result_of("gamma", Echo) is None and ctx.passed("gamma") is not None
    assert ctx.result_of("delta", Echo) is None


def test_a_result_of_another_version_is_a_one_line_run_dir_error(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ("alpha", GateStatus.PASS, {"count": 3}))
    with pytest.raises(RunDirError) as info:
        ctx.result_of("alpha", Echo)
    message = info.value.one_line()
    assert "\n" not in message and "alpha" in message and "Echo" in message
    assert "value" in message and "--fresh" in message
