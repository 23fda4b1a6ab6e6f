from __future__ import annotations

from adaptgate.pipeline.record import GateRecord, GateStatus, RunRecord, RunSettings
from adaptgate.report.markdown import render_markdown, reproduce_command


def _record() -> RunRecord:
    record = RunRecord(run_dir="runs/x", settings=RunSettings(model="/m/Qwen3 FP8", target="cpu"))
    record.put(
        GateRecord(
            name="alpha",
            title="Inspect",
            status=GateStatus.PASS,
            reason="fits",
            summary={"total_params": 123456789, "weights_gib": 1.23456789},
            result={"x": 1},
            seconds=0.25,
        )
    )
    record.put(
        GateRecord(
            name="kvcache",
            title="KV cache",
            status=GateStatus.SKIPPED,
            reason="the plan uses a bf16 cache",
        )
    )
    record.put(
        GateRecord(
            name="smoke",
            title="Smoke",
            status=GateStatus.FAIL,
            reason="max_tokens ignored | 2 checks failed",
        )
    )
    return record


def test_summary_table_has_every_gate_status_reason_and_measured_values():
    text = render_markdown(_record())
    assert "| Inspect | PASS | fits | total_params=123456789; weights_gib=1.23457 | 0.2 |" in text
    assert "| KV cache | SKIPPED | the plan uses a bf16 cache |" in text
    assert "**FAIL** | max_tokens ignored \\| 2 checks failed" in text
    assert "Overall: **FAIL**" in text


def test_reproduce_command_is_quoted_for_the_shell():
    cmd = reproduce_command(_record())
    assert cmd.startswith("adaptgate run '/m/Qwen3 FP8' --target cpu")
