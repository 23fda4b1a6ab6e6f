"""The outlier scan counts what the format does to each element, per KV head."""

from __future__ import annotations

import math

import torch
from kv_testlib import HEAD_DIM, KV_HEADS, LAYERS, arm

from adaptgate.kvcache.scan import CalibrationAccumulator, ScanAccumulator


def _k_v(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(KV_HEADS, 40, HEAD_DIM, generator=g)
    k[1, :, 3] = 500.0 + torch.arange(40.0)  # head 1 carries an outlier channel
    k[0, :5, 0] = 1e-4  # e4m3's smallest subnormal is 2**-9: these flush to zero
    return k, torch.randn(KV_HEADS, 40, HEAD_DIM, generator=g)


def test_fp8_counts_against_an_independent_computation() -> None:
    a = arm("fp8_e4m3", 1.0)
    scan = ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, [a])
    k, v = _k_v(0)
    scan.add(0, k, v)
    scan.add(0, k * 0.5, v)  # a second pass accumulates
    scan.add(1, v, v)
    layer0 = scan.result(["l0", "l1"])[0]
    fk = layer0.formats["fp8_e4m3"].k
    assert fk.saturated == [0, 40]  # 500..539 > 448 in the first pass only
    assert fk.overflow == [0, 0]  # none beyond 1.25 * 448 = 560
    # independent: e4m3 stores |x| <= 2**-10 (half its smallest subnormal, ties to even) as 0
    tiny = [((x != 0) & (x.abs() <= 2.0**-10)).reshape(KV_HEADS, -1).sum(1) for x in (k, k * 0.5)]
    assert fk.flushed == (tiny[0] + tiny[1]).tolist()
    assert fk.flushed[0] >= 10  # the planted ones in both passes
    assert fk.amax_scaled[1] == 539.0
    assert layer0.k_amax == [float(k[0].abs().max()), 539.0]
    assert fk.elements_per_head == 2 * 40 * HEAD_DIM
    stored = torch.cat([a.roundtrip(0, k, v)[0], a.roundtrip(0, k * 0.5, v)[0]], dim=1)
    ref = torch.cat([k, k * 0.5], dim=1).double()
    want = math.sqrt(float(((stored.double() - ref) ** 2).sum() / (ref**2).sum()))
    assert abs(fk.rel_rms_error - want) < 1e-12
    assert fk.step_at_max == 32.0  # e4m3 codes are 32 apart at 539 -> clipped to 448
    assert layer0.formats["fp8_e4m3"].v.saturated == [0, 0]


def test_c8_saturation_is_outside_the_int8_codes() -> None:
    a = arm("int8_c8", 0.5)  # codes reach +-127 at |x| = 63.5
    scan = ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, [a])
    x = torch.zeros(KV_HEADS, 4, HEAD_DIM)
    x[0, 0, 0], x[0, 1, 0], x[1, 0, 1], x[1, 1, 1] = 63.74, 63.76, -64.2, -64.3
    x[1, 2, 2] = 0.2  # rounds to code 0: flushed
    x[1, 3, 3] = 80.0  # code 160 > 1.25 * 127: clipped by more than 20%
    scan.add(0, x, x)
    fk = scan.result(["a", "b"])[0].formats["int8_c8"].k
    assert fk.saturated == [1, 2]  # 127.52 -> 128, -128.6 -> -129, 160 fall outside
    assert fk.overflow == [0, 1]
    assert fk.flushed == [0, 1]


def test_calibration_takes_channel_maxima() -> None:
    cal = CalibrationAccumulator(LAYERS)
    k, v = _k_v(1)
    cal.add(0, k, v)
    cal.add(1, k, v)
    cal.add(0, k * 2, -v * 3)
    out = cal.result()
    assert out.tokens == 80
    torch.testing.assert_close(out.k_amax[0], (2 * k).abs().amax(dim=1).reshape(-1))
    torch.testing.assert_close(out.v_amax[0], (3 * v).abs().amax(dim=1).reshape(-1))
    assert out.k_amax[0].shape == (KV_HEADS * HEAD_DIM,)
    assert float(out.k_amax[0][HEAD_DIM + 3]) == 2 * 539.0  # channel = head * head_dim + d
