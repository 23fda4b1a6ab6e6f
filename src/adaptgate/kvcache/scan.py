"""The outlier scan: per layer and KV head, K/V magnitudes against each format's range and
resolution, measured on the unquantized model's own K/V (keys after rotary embedding) over
every prompt token and every token of the baseline's greedy continuation.

Counted per head: ``saturated`` (FP8: ``|x / scale|`` beyond the largest finite value, which
SATFINITE clips; int8: ``x / scale + offset`` rounding outside -128..127), ``overflow`` (the
subset clipped by more than 20%: ``|x / scale| > 1.25 x`` the largest code -- beyond FP8's own
worst rounding error of 6.25% (e4m3) / 12.5% (e5m2), a systematic distortion), ``flushed``
(non-zero values stored as zero), and the relative RMS error of what the cache gives back.
A layer is *at risk* for a format when any limit of the ``scan`` section of the thresholds
is exceeded; those layers are named in the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from adaptgate.kvcache.formats import fp8_step
from adaptgate.kvcache.scales import Calibration

if TYPE_CHECKING:
    import torch

    from adaptgate.kvcache.sim import Arm

OVERFLOW = 1.25  # |x/scale| beyond 1.25 x the largest code: clipped by more than 20%


class TensorScan(BaseModel):
    """K or V of one layer under one format; lists are per KV head."""

    amax_scaled: list[float] = Field(description="max |x/scale| (int8: |x/scale + offset|)")
    saturated: list[int]
    overflow: list[int] = Field(
        default_factory=list,
        description=f"clipped by over 20% (|x/scale| > {OVERFLOW} x limit); empty in results "
        "written before adaptgate counted it",
    )
    flushed: list[int] = Field(description="non-zero values stored as 0")
    elements_per_head: int
    rel_rms_error: float = Field(description="||stored - x|| / ||x|| over the layer")
    step_at_max: float = Field(description="quantization step near the largest value, in x units")

    @property
    def saturated_total(self) -> int:
        return sum(self.saturated)

    @property
    def overflow_total(self) -> int:
        return sum(self.overflow)

    @property
    def flushed_total(self) -> int:
        return sum(self.flushed)

    @property
    def elements(self) -> int:
        return self.elements_per_head * len(self.saturated)


class FormatLayerScan(BaseModel):
    format: str
    limit: float = Field(description="largest code magnitude (448, 57344, 127)")
    k: TensorScan
    v: TensorScan
    at_risk: bool = False
    reasons: list[str] = Field(default_factory=list)

    @property
    def amax_scaled(self) -> float:
        return max(*self.k.amax_scaled, *self.v.amax_scaled)


class LayerScan(BaseModel):
    layer: int
    name: str = Field(description="the attention module, e.g. model.layers.3.self_attn")
    k_amax: list[float] = Field(description="max |K| per KV head (after rotary embedding)")
    v_amax: list[float]
    formats: dict[str, FormatLayerScan] = Field(default_factory=dict)


@dataclass
class _Acc:
    heads: int
    amax_scaled: list[float] = field(default_factory=list)
    saturated: list[int] = field(default_factory=list)
    overflow: list[int] = field(default_factory=list)
    flushed: list[int] = field(default_factory=list)
    count: int = 0
    err2: float = 0.0
    ref2: float = 0.0

    def __post_init__(self) -> None:
        self.amax_scaled = [0.0] * self.heads
        self.saturated = [0] * self.heads
        self.overflow = [0] * self.heads
        self.flushed = [0] * self.heads


def _reduce_heads(t: torch.Tensor) -> list[float]:
    """``[heads, tokens, dim]`` -> per-head max as floats."""
    return [float(x) for x in t.reshape(t.shape[0], -1).amax(dim=1)]


class ScanAccumulator:
    """Fed the baseline row's K/V (``[kv_heads, tokens, head_dim]``) layer by layer."""

    def __init__(self, num_layers: int, kv_heads: int, head_dim: int, arms: list[Arm]) -> None:
        self.num_layers, self.kv_heads, self.head_dim = num_layers, kv_heads, head_dim
        self.arms = arms
        self.k_amax = [[0.0] * kv_heads for _ in range(num_layers)]
        self.v_amax = [[0.0] * kv_heads for _ in range(num_layers)]
        self.acc = {
            (a.name, layer, t): _Acc(kv_heads)
            for a in arms
            for layer in range(num_layers)
            for t in "kv"
        }

    def add(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        import torch

        k32, v32 = k.to(torch.float32), v.to(torch.float32)
        for store, x in ((self.k_amax, k32), (self.v_amax, v32)):
            store[layer] = [
                max(a, b) for a, b in zip(store[layer], _reduce_heads(x.abs()), strict=True)
            ]
        for arm in self.arms:
            kq, vq = arm.roundtrip(layer, k32, v32)
            for t, x, xq in (("k", k32, kq), ("v", v32, vq)):
                self._add_one(self.acc[(arm.name, layer, t)], arm, layer, t, x, xq)

    def merge(self, other: ScanAccumulator) -> None:
        """Adds what ``other`` (same layers, heads and arms) was fed, as if fed here too (float
        sums aside: its sums are added, not its terms)."""
        for layer in range(self.num_layers):
            for store, more in ((self.k_amax, other.k_amax), (self.v_amax, other.v_amax)):
                store[layer] = [max(a, b) for a, b in zip(store[layer], more[layer], strict=True)]
        for key, acc in self.acc.items():
            o = other.acc[key]
            acc.amax_scaled = [
                max(a, b) for a, b in zip(acc.amax_scaled, o.amax_scaled, strict=True)
            ]
            acc.saturated = [a + b for a, b in zip(acc.saturated, o.saturated, strict=True)]
            acc.overflow = [a + b for a, b in zip(acc.overflow, o.overflow, strict=True)]
            acc.flushed = [a + b for a, b in zip(acc.flushed, o.flushed, strict=True)]
            acc.count += o.count
            acc.err2 += o.err2
            acc.ref2 += o.ref2

    def _add_one(
        self, acc: _Acc, arm: Arm, layer: int, t: str, x: torch.Tensor, xq: torch.Tensor
    ) -> None:
        import torch

        from adaptgate.kvcache.formats import c8_reciprocal, channel_view, engine_scale

        fmt, s = arm.scales.format, arm.scales.layers[layer]
        scale = s.k if t == "k" else s.v
        if fmt.is_fp8:
            y = x / scale.to(torch.float32)
            sat = y.abs() > fmt.limit
        else:
            off = s.k_offset if t == "k" else s.v_offset
            assert off is not None
            h, d, pd = arm.kv_heads, arm.head_dim, arm.param_dtype
            inv = channel_view(c8_reciprocal(scale, pd), h, d)
            y = x * inv + channel_view(engine_scale(off, pd), h, d)
            r = torch.round(y)
            sat = (r > fmt.limit) | (r < -fmt.limit - 1)
        flushed = (x != 0) & (xq == 0)
        acc.amax_scaled = [
            max(a, b) for a, b in zip(acc.amax_scaled, _reduce_heads(y.abs()), strict=True)
        ]
        per_head = sat.reshape(sat.shape[0], -1).sum(dim=1).tolist()
        acc.saturated = [a + int(b) for a, b in zip(acc.saturated, per_head, strict=True)]
        over = y.abs() > OVERFLOW * fmt.limit
        per_head = over.reshape(over.shape[0], -1).sum(dim=1).tolist()
        acc.overflow = [a + int(b) for a, b in zip(acc.overflow, per_head, strict=True)]
        per_head = flushed.reshape(flushed.shape[0], -1).sum(dim=1).tolist()
        acc.flushed = [a + int(b) for a, b in zip(acc.flushed, per_head, strict=True)]
        acc.count += int(x[0].numel())
        acc.err2 += float(((xq - x).double() ** 2).sum())
        acc.ref2 += float((x.double() ** 2).sum())

    def _tensor_scan(self, arm: Arm, layer: int, t: str) -> TensorScan:
        import math

        acc = self.acc[(arm.name, layer, t)]
        fmt, s = arm.scales.format, arm.scales.layers[layer]
        scale = s.k if t == "k" else s.v
        if fmt.is_fp8:
            step = fp8_step(max(acc.amax_scaled), fmt) * float(scale)
        else:
            step = float(scale.max())
        rel = math.sqrt(acc.err2 / acc.ref2) if acc.ref2 > 0 else 0.0
        return TensorScan(
            amax_scaled=acc.amax_scaled,
            saturated=acc.saturated,
            overflow=acc.overflow,
            flushed=acc.flushed,
            elements_per_head=acc.count,
            rel_rms_error=rel,
            step_at_max=step,
        )

    def result(self, names: list[str]) -> list[LayerScan]:
        out = []
        for layer in range(self.num_layers):
            scan = LayerScan(
                layer=layer, name=names[layer], k_amax=self.k_amax[layer], v_amax=self.v_amax[layer]
            )
            for arm in self.arms:
                scan.formats[arm.name] = FormatLayerScan(
                    format=arm.name,
                    limit=arm.scales.format.limit,
                    k=self._tensor_scan(arm, layer, "k"),
                    v=self._tensor_scan(arm, layer, "v"),
                )
            out.append(scan)
        return out


class CalibrationAccumulator:
    """Per-channel ``|x|`` maxima of K and V (channel = head * head_dim + d)."""

    def __init__(self, num_layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * num_layers
        self.v: list[torch.Tensor | None] = [None] * num_layers
        self.tokens = 0

    def add(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """``k``/``v``: ``[kv_heads, tokens, head_dim]`` of one row."""
        import torch

        if layer == 0:
            self.tokens += int(k.shape[1])
        for store, x in ((self.k, k), (self.v, v)):
            ch = x.to(torch.float32).abs().amax(dim=1).reshape(-1)
            old = store[layer]
            store[layer] = ch if old is None else torch.maximum(old, ch)

    def result(self) -> Calibration:
        if any(t is None for t in self.k + self.v):
            raise RuntimeError("calibration saw no K/V for some layer")
        return Calibration(
            k_amax=[t for t in self.k if t is not None],
            v_amax=[t for t in self.v if t is not None],
            tokens=self.tokens,
        )
