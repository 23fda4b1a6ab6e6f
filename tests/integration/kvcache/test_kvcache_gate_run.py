"""The gate in a run directory: FAIL when the asked format is UNSAFE, the flag for serve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.gate import RunContext
from adaptgate.kvcache import gate as kvgate
from adaptgate.record import GateStatus, RunRecord, RunSettings
from adaptgate.settings import KVCACHE

pytestmark = pytest.mark.slow


def _ctx(tmp: Path, model: Path) -> RunContext:
    settings = RunSettings(model=str(model), target="cuda").with_environment()
    return RunContext(tmp, settings, RunRecord(run_dir=str(tmp), settings=settings))


def test_gate_fails_planted_and_passes_clean(
    planted_model: Path,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kvgate, "NEW_TOKENS", 32)
    monkeypatch.setenv(KVCACHE, "fp8_e4m3")
    bad = kvgate.KVCacheGate().run(_ctx(tmp_path / "a", planted_model))
    assert bad.status is GateStatus.FAIL
    assert bad.summary["kv_cache_dtype"] == "auto"
    assert bad.summary["fp8_e4m3_layers_at_risk"] == [
        "model.layers.1.self_attn",
        "model.layers.3.self_attn",
    ]
    assert "UNSAFE" in bad.reason and (tmp_path / "a" / "kvcache" / "kvcache.json").is_file()
    good = kvgate.KVCacheGate().run(_ctx(tmp_path / "b", tiny_model("qwen3")))
    assert good.status is GateStatus.PASS, good.reason
    assert good.summary["kv_cache_dtype"] == "fp8_e4m3"
    assert good.summary["verdicts"] == {"fp8_e4m3": "SAFE"}
