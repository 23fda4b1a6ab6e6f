"""``--verify``: re-read the output and check every tensor against its plan.

Per shard: the header parses (adaptgate's strict reader) and lists exactly the planned tensors
with their dtypes, shapes and offsets. Per tensor: the checksum of the bytes on disk equals the one
computed when they were written; pass-through tensors equal the source bytes; for dequantized,
quantized and cast tensors a deterministic sample of blocks (rows for int8) is recomputed from
the source with the slow textbook code and compared bit for bit. Tensors are sampled through
the safetensors library itself, so the output is also proven loadable by it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.checkpoint import Checkpoint, read_safetensors_header
from adaptgate.convert.io import file_checksum
from adaptgate.convert.models import Action, ConversionPlan, TensorPlan, VerifyReport
from adaptgate.convert.work import TensorStats
from adaptgate.errors import AdaptgateError
from adaptgate.formats.dequantize import ceil_div

if TYPE_CHECKING:
    import torch

SAMPLES = 4


def _check_header(out_dir: Path, plan: ConversionPlan, problems: list[str]) -> None:
    by_name = plan.by_name()
    for shard in plan.shards:
        try:
            header = read_safetensors_header(out_dir / shard.file)
        except AdaptgateError as exc:
            problems.append(exc.one_line())
            continue
        if set(header.tensors) != set(shard.tensors):
            problems.append(f"{shard.file}: holds other tensors than planned")
        for name, info in header.tensors.items():
            t = by_name.get(name)
            if t and (info.dtype, list(info.shape), info.data_offsets) != (
                t.dtype,
                t.shape,
                t.data_offsets,
            ):
                problems.append(f"{shard.file}: tensor {name} is {info.dtype}{list(info.shape)}")


def _blocks(t: TensorPlan, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Up to SAMPLES ``(r0, r1, c0, c1)`` scale blocks, always including the last (cropped) one."""
    assert t.quant is not None
    rows, cols = t.source_shape
    bn, bk = t.quant.block
    gr, gc = ceil_div(rows, bn), ceil_div(cols, bk)
    picks = {(gr - 1, gc - 1)} | {(rng.randrange(gr), rng.randrange(gc)) for _ in range(SAMPLES)}
    return [(i * bn, min(rows, (i + 1) * bn), j * bk, min(cols, (j + 1) * bk)) for i, j in picks]


def _reference_rows(t: TensorPlan, ckpt: Checkpoint, r0: int, r1: int) -> torch.Tensor:
    """float32 dequantization of rows ``r0:r1`` (a whole number of scale rows) by the textbook
    code, from a fresh read of the source."""
    from adaptgate.formats.dequantize import dequantize_reference, scale_grid

    assert t.quant is not None
    rows, cols = t.source_shape
    bn, bk = t.quant.block
    grid = scale_grid(ckpt.read_tensor(t.quant.scale), (ceil_div(rows, bn), ceil_div(cols, bk)))
    q = ckpt.read_tensor(t.source)[r0:r1]
    sub = grid[r0 // bn : ceil_div(r1, bn)]
    return dequantize_reference(q, sub, strategy="block", block=(bn, bk), target="f32")


def _expected(t: TensorPlan, ckpt: Checkpoint, box: tuple[int, int, int, int]) -> torch.Tensor:
    import torch

    from adaptgate.formats import ascend

    r0, r1, c0, c1 = box
    ref = _reference_rows(t, ckpt, r0, r1)
    if t.action is Action.QUANTIZE:  # int8 scales are per row: requantize whole rows
        return ascend.quantize_w8a8_dynamic(ref)[0]
    target = torch.float16 if t.dtype == "F16" else torch.bfloat16
    block = ref[:, c0:c1]
    if target == torch.float16:
        block = block.clamp(-65504, 65504)
    return block.to(target)


def verify_output(
    ckpt: Checkpoint,
    plan: ConversionPlan,
    out_dir: Path,
    stats: dict[str, TensorStats],
    algorithm: str,
) -> VerifyReport:
    from safetensors import safe_open

    problems: list[str] = []
    _check_header(out_dir, plan, problems)
    rng = random.Random(0)
    sampled = 0
    shard_start = {s.file: s.header_size for s in plan.shards}
    handles = {s.file: safe_open(str(out_dir / s.file), framework="pt") for s in plan.shards}
    for t in plan.tensors:
        path = out_dir / t.shard
        begin = shard_start[t.shard] + t.data_offsets[0]
        crc = file_checksum(path, begin, begin + t.nbytes, algorithm)
        if crc != stats[t.name].checksum:
            problems.append(f"tensor {t.name}: checksum differs from the one written")
        if t.action is Action.COPY:
            info = ckpt.tensors[t.source]
            src_begin = ckpt.headers[info.file].data_start + info.data_offsets[0]
            if (
                file_checksum(ckpt.root / info.file, src_begin, src_begin + info.nbytes, algorithm)
                != crc
            ):
                problems.append(f"tensor {t.name}: differs from the source bytes")
        elif t.action in (Action.DEQUANTIZE, Action.QUANTIZE):
            sampled += _compare_blocks(t, ckpt, handles[t.shard], rng, problems)
        elif t.action is Action.CAST:
            sampled += _compare_cast(t, ckpt, handles[t.shard], problems)
    return VerifyReport(
        checked_tensors=len(plan.tensors), sampled_blocks=sampled, problems=problems
    )


def _compare_blocks(
    t: TensorPlan, ckpt: Checkpoint, handle: object, rng: random.Random, problems: list[str]
) -> int:
    import torch

    view = handle.get_slice(t.name)  # type: ignore[attr-defined]
    n = 0
    for r0, r1, b0, b1 in _blocks(t, rng):
        c0, c1 = (0, t.source_shape[1]) if t.action is Action.QUANTIZE else (b0, b1)
        want = _expected(t, ckpt, (r0, r1, c0, c1))
        got = view[r0:r1, c0:c1]
        bits = torch.int8 if t.action is Action.QUANTIZE else torch.int16
        if not torch.equal(got.view(bits), want.view(bits)):
            problems.append(
                f"tensor {t.name}: rows {r0}:{r1} cols {c0}:{c1} differ from the reference"
            )
        n += 1
    return n


def _compare_cast(t: TensorPlan, ckpt: Checkpoint, handle: object, problems: list[str]) -> int:
    import torch
    from safetensors import safe_open

    from adaptgate.checkpoint import torch_dtype_of

    info = ckpt.tensors[t.source]
    k = min(64, t.shape[0]) if t.shape else 1
    with safe_open(str(ckpt.root / info.file), framework="pt") as src_file:
        src = src_file.get_slice(t.source)[0:k] if t.shape else src_file.get_tensor(t.source)
    target = torch_dtype_of(t.dtype)
    want = (
        src.float().clamp(-65504, 65504).to(target) if target == torch.float16 else src.to(target)
    )
    got = handle.get_slice(t.name)[0:k] if t.shape else handle.get_tensor(t.name)  # type: ignore[attr-defined]
    if not torch.equal(got, want):
        problems.append(f"tensor {t.name}: cast values differ from the source")
    return 1
