"""One job: read a source tensor, compute its outputs, write them at their planned offsets.

Jobs run on worker threads; everything heavy (``preadv``, the gather kernel, torch ops, CRC,
``pwrite``) releases the GIL. Large tensors are processed in bands of rows, so memory stays at a
few tens of MB per worker whatever the tensor size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from adaptgate.convert.io import BufferPool, ShardWriter
from adaptgate.convert.models import Action, ConversionPlan, Target, TensorPlan
from adaptgate.convert.source import Sources
from adaptgate.formats.dequantize import ceil_div, dequantize_codes, scale_grid
from adaptgate.formats.kernels import checksum

if TYPE_CHECKING:
    import numpy as np
    import torch

FloatTarget = Literal["bf16", "fp16"]
BAND_BYTES = 32 << 20  # rows per band: about this many output bytes


class TensorStats(BaseModel):
    """What writing one output tensor measured."""

    checksum: int  # of the bytes written (algorithm in the shard marker and the record)
    saturated: int = 0  # float16 values clamped to +-65504
    underflow: int = 0  # nonzero values that became zero (cast to float16)
    nonfinite: int = 0  # NaN/inf FP8 codes met
    err_sq: float | None = None  # int8 only: sum of squared errors vs the dequantized weight
    ref_sq: float | None = None  # int8 only: sum of squares of the dequantized weight
    max_abs_error: float | None = None

    @property
    def rel_error(self) -> float | None:
        if self.err_sq is None or not self.ref_sq:
            return None
        return math.sqrt(self.err_sq / self.ref_sq)


def _bands(rows: int, cols: int, bn: int, itemsize: int) -> list[tuple[int, int, int]]:
    """``(r0, r1, block_rows)`` bands: whole row blocks when they fit, else slices of one."""
    per_band = max(1, BAND_BYTES // max(1, cols * itemsize))
    if bn <= per_band:
        step = per_band // bn * bn
        return [(r, min(rows, r + step), bn) for r in range(0, rows, step)]
    out = []
    for b in range(0, rows, bn):
        end = min(rows, b + bn)
        out += [
            (r, min(end, r + per_band), min(end, r + per_band) - r) for r in range(b, end, per_band)
        ]
    return out


class Worker:
    """Runs jobs; shared by the worker threads (per-thread buffers come from the pool)."""

    def __init__(
        self, plan: ConversionPlan, sources: Sources, writers: dict[str, ShardWriter]
    ) -> None:
        self.plan = plan
        self.sources = sources
        self.writers = writers
        self.data_start = {s.file: s.header_size for s in plan.shards}
        self.pool = BufferPool()
        self.float_target: FloatTarget = "fp16" if plan.target is Target.FP16 else "bf16"

    def run(self, job: list[TensorPlan]) -> dict[str, TensorStats]:
        head = job[0]
        if head.action is Action.COPY:
            return {head.name: self._copy(head)}
        if head.action is Action.CAST:
            return {head.name: self._cast(head)}
        if head.action is Action.DEQUANTIZE:
            return {head.name: self._dequantize(head)}
        if head.action is Action.QUANTIZE:
            return self._quantize(job)
        raise ValueError(f"job starting with {head.action} for {head.name}")

    def _offset(self, t: TensorPlan) -> int:
        return self.data_start[t.shard] + t.data_offsets[0]

    def _copy(self, t: TensorPlan) -> TensorStats:
        crc, done, dst = 0, 0, self._offset(t)
        while done < t.nbytes:
            n = min(BAND_BYTES, t.nbytes - done)
            src = self.sources.read(t.source, done, n)
            view = self.pool.get("copy", n, phase=dst + done)  # aligned like its file offset
            view[:] = src
            crc = checksum(view, crc)
            self.writers[t.shard].write_at(dst + done, view)
            done += n
        return TensorStats(checksum=crc)

    def _cast(self, t: TensorPlan) -> TensorStats:
        import torch

        from adaptgate.checkpoint import torch_dtype_of

        src_dtype, dst_dtype = torch_dtype_of(t.source_dtype), torch_dtype_of(t.dtype)
        src_size, dst_size = src_dtype.itemsize, dst_dtype.itemsize
        numel = math.prod(t.shape)
        step = max(1, BAND_BYTES // max(src_size, dst_size))
        stats = TensorStats(checksum=0)
        dst = self._offset(t)
        for e0 in range(0, numel, step):
            n = min(step, numel - e0)
            src_view = self.sources.read(t.source, e0 * src_size, n * src_size)
            x = torch.frombuffer(src_view, dtype=torch.uint8).view(src_dtype)
            out_view = self.pool.get("out", n * dst_size, phase=dst + e0 * dst_size)
            y = torch.frombuffer(out_view, dtype=torch.uint8).view(dst_dtype)
            y.copy_(x)
            if dst_dtype == torch.float16:
                _saturate_half(x, y, stats)
            stats.checksum = checksum(out_view, stats.checksum)
            self.writers[t.shard].write_at(dst + e0 * dst_size, out_view)
            del x, y
        return stats

    def _codes(self, t: TensorPlan, r0: int, r1: int) -> np.ndarray:
        import numpy as np

        cols = t.source_shape[1]
        view = self.sources.read(t.source, r0 * cols, (r1 - r0) * cols)
        return np.frombuffer(view, dtype=np.uint8).reshape(r1 - r0, cols)

    def _grid(self, t: TensorPlan) -> torch.Tensor:
        assert t.quant is not None
        rows, cols = t.source_shape
        bn, bk = t.quant.block
        scale = self.sources.ckpt.read_tensor(t.quant.scale)
        return scale_grid(scale, (ceil_div(rows, bn), ceil_div(cols, bk)))

    def _dequantize(self, t: TensorPlan) -> TensorStats:
        import numpy as np

        assert t.quant is not None
        rows, cols = t.source_shape
        bn, bk = t.quant.block
        grid = self._grid(t)
        stats = TensorStats(checksum=0)
        dst = self._offset(t)
        for r0, r1, band_bn in _bands(rows, cols, bn, 2):
            codes = self._codes(t, r0, r1)
            view = self.pool.get("out", (r1 - r0) * cols * 2, phase=dst + r0 * cols * 2)
            out = np.frombuffer(view, dtype=np.uint16).reshape(r1 - r0, cols)
            sub = grid[r0 // bn : ceil_div(r1, bn)]
            target = self.float_target  # FLOAT groups of a w8a8 plan are bf16
            result = dequantize_codes(
                codes, sub, (band_bn, bk), code=t.quant.fp8, target=target, out=out
            )
            stats.saturated += result.saturated
            stats.nonfinite += result.nonfinite
            stats.checksum = checksum(view, stats.checksum)
            self.writers[t.shard].write_at(dst + r0 * cols * 2, view)
        return stats

    def _quantize(self, job: list[TensorPlan]) -> dict[str, TensorStats]:
        import numpy as np
        import torch

        from adaptgate.formats import ascend

        weight, scale_t, *offset_t = job  # the zero weight_offset: msModelSlim's layout only
        assert weight.quant is not None
        rows, cols = weight.source_shape
        bn, bk = weight.quant.block
        grid = self._grid(weight)
        scales = np.zeros((rows, 1), dtype=np.float32)
        stats = TensorStats(checksum=0, err_sq=0.0, ref_sq=0.0, max_abs_error=0.0)
        dst = self._offset(weight)
        # float64 temporaries of the quantizer and the error: ~32 bytes per element per band
        for r0, r1, band_bn in _bands(rows, cols, bn, 32):
            codes = self._codes(weight, r0, r1)
            ref_view = self.pool.get("ref", (r1 - r0) * cols * 4)
            ref = dequantize_codes(
                codes,
                grid[r0 // bn : ceil_div(r1, bn)],
                (band_bn, bk),
                code=weight.quant.fp8,
                target="f32",
                out=np.frombuffer(ref_view, dtype=np.uint32).reshape(r1 - r0, cols),
            )
            stats.nonfinite += ref.nonfinite
            w = torch.frombuffer(ref_view, dtype=torch.float32).reshape(r1 - r0, cols)
            q, s, _ = ascend.quantize_w8a8_dynamic(w)  # msModelSlim's rule, rows independent
            scales[r0:r1] = s.numpy()
            w64 = w.to(torch.float64)
            err = q.to(torch.float64).mul_(s.to(torch.float64)).sub_(w64)
            stats.err_sq = (stats.err_sq or 0.0) + float(torch.dot(err.view(-1), err.view(-1)))
            stats.ref_sq = (stats.ref_sq or 0.0) + float(torch.dot(w64.view(-1), w64.view(-1)))
            if err.numel():
                stats.max_abs_error = max(stats.max_abs_error or 0.0, float(err.abs_().max()))
            del w, w64, err
            view = self.pool.get("out", (r1 - r0) * cols, phase=dst + r0 * cols)
            view[:] = q.numpy().reshape(-1).view(np.uint8).data  # aligned for direct I/O
            stats.checksum = checksum(view, stats.checksum)
            self.writers[weight.shard].write_at(dst + r0 * cols, view)
        out = {weight.name: stats}
        for t, values in ((scale_t, scales), *((o, np.zeros_like(scales)) for o in offset_t)):
            view = memoryview(np.ascontiguousarray(values).reshape(-1).view(np.uint8).data)
            out[t.name] = TensorStats(checksum=checksum(view))
            self.writers[t.shard].write_at(self._offset(t), view)
        return out


def _saturate_half(x: torch.Tensor, y: torch.Tensor, stats: TensorStats) -> None:
    """Clamps float16 overflow to +-65504 (never inf) and counts it, and counts underflow."""
    import torch

    over = torch.isinf(y) & torch.isfinite(x)
    if bool(over.any()):
        stats.saturated += int(over.sum())
        y[over] = torch.where(x[over] > 0, 65504.0, -65504.0).to(torch.float16)
    stats.underflow += int(((y == 0) & (x != 0)).sum())
