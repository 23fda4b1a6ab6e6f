"""Output layout: tensors packed into shards deterministically, and each shard's header.

Jobs (a tensor, or a quantized weight with its scale and offset) are packed in plan order into
shards of at most ``max_shard_size`` bytes with the Hugging Face splitter; inside a shard tensors
are laid out as safetensors itself does (wider dtypes first, then by name), so every tensor is
aligned. Offsets are fixed before any data exists, so workers write each tensor at its place in
any order and a rerun writes the same bytes.
"""

from __future__ import annotations

import json
import re

from adaptgate.checkpoint import SAFETENSORS_DTYPES
from adaptgate.checkpoint.writer import header_bytes, plan_shards, shard_file_name
from adaptgate.convert.models import ShardPlan, TensorPlan

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """``layers.10`` after ``layers.9``."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(name) if p)


def tensor_nbytes(dtype: str, shape: list[int]) -> int:
    numel = 1
    for d in shape:
        numel *= d
    return numel * SAFETENSORS_DTYPES[dtype].bits // 8


def shard_header(tensors: list[TensorPlan]) -> bytes:
    return header_bytes(
        {
            t.name: {"dtype": t.dtype, "shape": t.shape, "data_offsets": list(t.data_offsets)}
            for t in tensors
        }
    )


def layout_shards(
    jobs: list[list[TensorPlan]],
    max_shard_size: int,
    *,
    prefix: str,
    always_index: bool,
) -> tuple[list[ShardPlan], str | None]:
    """Assigns every tensor of ``jobs`` a shard and data offsets (in place); returns the shards
    and the index file name (None for a single unindexed file)."""
    sizes = [sum(tensor_nbytes(t.dtype, t.shape) for t in job) for job in jobs]
    groups = plan_shards(sizes, max_shard_bytes=max_shard_size) if jobs else []
    single = len(groups) == 1 and not always_index
    shards: list[ShardPlan] = []
    for k, group in enumerate(groups, start=1):
        file = f"{prefix}.safetensors" if single else shard_file_name(prefix, k, len(groups))
        members = [t for i in group for t in jobs[i]]
        members.sort(key=lambda t: (-SAFETENSORS_DTYPES[t.dtype].bits, t.name))
        offset = 0
        for t in members:
            size = tensor_nbytes(t.dtype, t.shape)
            t.shard, t.data_offsets = file, (offset, offset + size)
            offset += size
        shards.append(
            ShardPlan(
                file=file,
                header_size=len(shard_header(members)),
                data_size=offset,
                tensors=[t.name for t in members],
            )
        )
    index = None if single or not groups else f"{prefix}.safetensors.index.json"
    return shards, index


def index_json(shards: list[ShardPlan], tensors: list[TensorPlan]) -> str:
    """``{metadata: {total_size}, weight_map}`` with the weight map sorted by name."""
    weight_map = {t.name: t.shard for t in sorted(tensors, key=lambda t: t.name)}
    total = sum(s.data_size for s in shards)
    return (
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
    )
