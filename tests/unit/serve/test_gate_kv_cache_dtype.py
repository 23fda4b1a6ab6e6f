"""The --kv-cache-dtype the serve gate launches with: the run's when it pins one, else the
kvcache gate's verdict."""

from __future__ import annotations

from pathlib import Path

from adaptgate.gate import RunContext
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings
from adaptgate.serve.gate import kv_cache_dtype


def _ctx(tmp: Path, kvcache: GateStatus | None, target: str = "cuda", **pin: str) -> RunContext:
    settings = RunSettings(model="m", target=target, **pin)
    record = RunRecord(run_dir=str(tmp), settings=settings)
    if kvcache is not None:
        summary = {"kv_cache_dtype": "fp8_e4m3", "ascend_kv_cache": "C8"}
        record.put(
            GateRecord(name="kvcache", title="KV", status=kvcache, reason="r", summary=summary)
        )
    return RunContext(tmp, settings, record)


def test_the_kvcache_verdict_picks_it_when_the_run_pins_none(tmp_path: Path) -> None:
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.PASS)) == "fp8_e4m3"
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.PASS, "ascend-a2")) == "int8"
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.FAIL)) == "auto"
    assert kv_cache_dtype(_ctx(tmp_path, None)) == "auto"


def test_a_pinned_dtype_is_launched_whatever_the_verdict(tmp_path: Path) -> None:
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.PASS, kv_cache_dtype="fp8_e5m2")) == "fp8_e5m2"
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.FAIL, kv_cache_dtype="fp8_e4m3")) == "fp8_e4m3"
    assert kv_cache_dtype(_ctx(tmp_path, GateStatus.PASS, kv_cache_dtype="auto")) == "auto"
    assert kv_cache_dtype(_ctx(tmp_path, None, kv_formats="fp8_e5m2")) == "auto"  # only tested
