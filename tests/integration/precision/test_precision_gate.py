"""PrecisionGate in a run context: reference always built; served check SKIPPED without a
server, PASS against a server answering the reference's own greedy numbers (asked first, then
scored teacher-forced); conversion compared on the same forced text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.gate import RunContext
from adaptgate.precision.gate import PrecisionGate
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings
from adaptgate.reference.dump import open_dump

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
    # the reason as a message, with why there is no server nested in it (issue 19)
    assert outcome.reason_id == "precision.served_skipped"
    assert outcome.reason_params["why"]["id"] == "gate.no_serve"
    assert (tmp_path / "precision" / "reference" / "reference.json").is_file()
    assert outcome.summary["prompts"] == 3
    assert outcome.summary["reference_mode"] == "full"
    assert outcome.result is not None
    assert outcome.result.model_dump()["reference"]["max_new_tokens"] == 4  # greedy, full load


def test_streamed_without_server_scores_the_prompts_in_one_pass(
    fp8_model: Path, tiny_model: Callable[..., Path], prompts_file: Path, tmp_path: Path
) -> None:
    ctx = _ctx(tmp_path, fp8_model)
    ctx.settings = ctx.settings.model_copy(update={"max_memory": 0})  # run --max-memory 0
    converted = tiny_model(arch="qwen3", format="w8a8_dynamic", num_layers=4)
    ctx.record.put(
        GateRecord(
            name="convert", title="Convert", status=GateStatus.PASS, reason="ok",
            summary={"output_dir": str(converted)},
        )
    )  # fmt: skip
    outcome = PrecisionGate(prompts_file=prompts_file, max_new_tokens=8).run(ctx)
    assert outcome.summary["reference_mode"] == "streamed"
    assert outcome.summary["conversion_verdict"] == "PASS", outcome.reason
    for name in ("reference", "reference-converted"):
        dump = open_dump(tmp_path / "precision" / name).meta
        assert dump.timings is not None and dump.timings.passes == 1
        assert dump.max_new_tokens == 0  # no per-token re-reads of a streamed checkpoint


def test_served_check_and_conversion_compare(
    dump_of: Callable[..., Path],
    fp8_model: Path,
    tiny_model: Callable[..., Path],
    fake_server: Callable[[Path], str],
    prompts_file: Path,
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path, fp8_model)
    # the server answers with the model's own greedy numbers (a greedy dump of it)
    url = fake_server(dump_of(fp8_model, max_new_tokens=8))
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
    assert data["served"]["metrics"]["teacher_forced"]
    assert data["served"]["metrics"]["scored_positions"] == 3 * 8
    source = open_dump(tmp_path / "precision" / "reference").meta
    converted_dump = open_dump(tmp_path / "precision" / "reference-converted").meta
    served_ids = [
        p.generated_ids for p in open_dump(dump_of(fp8_model, max_new_tokens=8)).meta.prompts
    ]
    assert [p.generated_ids for p in source.prompts] == served_ids  # the server's text
    assert [p.generated_ids for p in converted_dump.prompts] == served_ids  # scored the same
    assert source.continuation == converted_dump.continuation == "forced"
    assert source.timings is not None and source.timings.passes == 1
    assert (tmp_path / "precision" / "conversion-depth.png").is_file()
