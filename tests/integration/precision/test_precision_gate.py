"""PrecisionGate in a run context: reference always built; served check SKIPPED without a
server, PASS against a server answering the reference's own numbers; conversion compared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.gate import RunContext
from adaptgate.precision.gate import PrecisionGate
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings

pytestmark = pytest.mark.slow


def _ctx(run_dir: Path, model: Path) -> RunContext:
    settings = RunSettings(model=str(model), target="cpu")
    return RunContext(run_dir, settings, RunRecord(run_dir=str(run_dir), settings=settings))


def test_without_server_the_served_check_is_skipped(
    fp8_model: Path, prompts_file: Path, tmp_path: Path
) -> None:
    ctx = _ctx(tmp_path, fp8_model)
    outcome = PrecisionGate(prompts_file=prompts_file, max_new_tokens=4).run(ctx)
    assert outcome.status is GateStatus.SKIPPED
    assert "serve gate did not run" in outcome.reason
    assert (tmp_path / "precision" / "reference" / "reference.json").is_file()
    assert outcome.summary["prompts"] == 3
    assert outcome.summary["reference_mode"] == "full"


def test_served_check_and_conversion_compare(
    fp8_model: Path,
    tiny_model: Callable[..., Path],
    fake_server: Callable[[Path], str],
    prompts_file: Path,
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path, fp8_model)
    # the server answers from the reference the gate is about to write (read per request)
    url = fake_server(tmp_path / "precision" / "reference")
    ctx.record.put(
        GateRecord(
            name="serve", title="Serve", status=GateStatus.PASS, reason="up",
            summary={"url": url, "served_model_name": "tiny"},
        )
    )  # fmt: skip
    converted = tiny_model(arch="qwen3", format="w8a8_dynamic", num_layers=4)
    ctx.record.put(
        GateRecord(
            name="convert", title="Convert", status=GateStatus.PASS, reason="ok",
            summary={"output_dir": str(converted)},
        )
    )  # fmt: skip
    outcome = PrecisionGate(prompts_file=prompts_file, max_new_tokens=8).run(ctx)
    assert outcome.status is GateStatus.PASS, outcome.reason
    assert outcome.summary["served_verdict"] == "PASS"
    assert outcome.summary["exact_match_rate"] == 1.0
    assert outcome.summary["conversion_verdict"] == "PASS"
    assert outcome.result is not None
    data = outcome.result.model_dump(mode="json")
    assert data["conversion"]["candidate"]["simulate"] == "w8a8-dynamic"
    assert (tmp_path / "precision" / "conversion-depth.png").is_file()
