"""Verdicts from thresholds as data."""

from __future__ import annotations

from pathlib import Path

import pytest
from kv_testlib import arm

from adaptgate.errors import CheckpointNotFound, UsageError
from adaptgate.kvcache.formats import KV_FORMATS
from adaptgate.kvcache.scan import FormatLayerScan, LayerScan, TensorScan
from adaptgate.kvcache.verdict import decide, judge_layer, load_kv_thresholds, reason_text

GOOD = {
    "saturated_fraction": 0.0, "overflow_fraction": 0.0, "clip_ratio": 0.5,
    "layers_at_risk": 0.0, "kl_mean": 1e-4,
    "kl_max": 1e-3, "top1_agreement": 0.5, "exact_match_rate": 0.01,
    "repetition_increase": 0.0, "degenerated_share": 0.0, "nonfinite_steps": 0.0,
}  # fmt: skip


def test_builtin_thresholds_load_with_sources() -> None:
    th = load_kv_thresholds()
    assert th.unsafe["overflow_fraction"].max == 0.001
    assert th.risky["clip_ratio"].max is None
    assert th.risky["kl_mean"].max == 0.005
    assert all(
        limit.source for section in (th.scan, th.unsafe, th.risky) for limit in section.values()
    )


@pytest.mark.parametrize(
    ("change", "verdict", "metric"),
    [
        ({}, "SAFE", None),
        ({"kl_mean": 0.01}, "RISKY", "kl_mean"),
        ({"saturated_fraction": 1e-6, "clip_ratio": 1.2}, "SAFE", None),  # stray values
        ({"saturated_fraction": 1e-3, "layers_at_risk": 1.0}, "RISKY", "saturated_fraction"),
        ({"overflow_fraction": 0.01, "saturated_fraction": 0.01}, "UNSAFE", "overflow_fraction"),
        ({"overflow_fraction": 5e-4, "clip_ratio": 3.0}, "SAFE", None),  # far, but rare
        ({"kl_mean": 0.2}, "UNSAFE", "kl_mean"),
        ({"repetition_increase": 0.3}, "UNSAFE", "repetition_increase"),
        ({"nonfinite_steps": 3.0}, "UNSAFE", "nonfinite_steps"),
        ({"kl_mean": float("nan")}, "UNSAFE", "kl_mean"),
        ({"top1_agreement": 0.0, "exact_match_rate": 0.0}, "SAFE", None),  # reported only
    ],
)
def test_decide(change: dict[str, float], verdict: str, metric: str | None) -> None:
    got, checks = decide({**GOOD, **change}, load_kv_thresholds(), "fp8_e4m3")
    assert got == verdict
    failed = {c.metric for c in checks if not c.passed}
    assert (metric in failed) if metric else not failed
    text = reason_text(got, checks, ["model.layers.1.self_attn"] if metric else [], ["note"]).text
    assert text.endswith("note")
    if metric:
        assert metric in text and "model.layers.1.self_attn" in text


def _ts(saturated: list[int], flushed: list[int], rel: float) -> TensorScan:
    return TensorScan(
        amax_scaled=[600.0, 3.0], saturated=saturated, overflow=[0, 0], flushed=flushed,
        elements_per_head=1000, rel_rms_error=rel, step_at_max=32.0,
    )  # fmt: skip


def test_judge_layer_names_the_reason() -> None:
    th = load_kv_thresholds()
    ls = LayerScan(layer=3, name="model.layers.3.self_attn", k_amax=[600, 3], v_amax=[3, 3])
    fls = FormatLayerScan(
        format="fp8_e4m3", limit=448, k=_ts([700, 0], [0, 0], 0.2), v=_ts([0, 0], [0, 30], 0.02)
    )
    judge_layer(ls, fls, KV_FORMATS.get("fp8_e4m3"), th)
    assert fls.at_risk
    assert any("K saturates: 700 elements (heads [0])" in r for r in fls.reasons)
    assert any("V underflows: 1.50%" in r for r in fls.reasons)
    c8 = FormatLayerScan(format="int8_c8", limit=127, k=_ts([0, 0], [900, 900], 0.01),
                         v=_ts([0, 0], [900, 900], 0.01))  # fmt: skip
    judge_layer(ls, c8, KV_FORMATS.get("int8_c8"), th)
    assert not c8.at_risk  # int8 resolution is judged by the RMS error, not by zeros
    assert arm("int8_c8").name == "int8_c8"


def test_threshold_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound):
        load_kv_thresholds(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("unsafe:\n  cosine: {min: 0.9}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="unknown metric 'cosine'"):
        load_kv_thresholds(bad)
    bad.write_text("unsafe: [1, 2]\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not a valid"):
        load_kv_thresholds(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("risky:\n  kl_mean: {max: 0.1, source: mine}\n", encoding="utf-8")
    th = load_kv_thresholds(ok)
    assert th.file == str(ok) and not th.unsafe
    assert decide({**GOOD, "kl_mean": 0.05}, th, "x")[0] == "SAFE"
