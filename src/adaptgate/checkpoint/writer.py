"""Write tensors as real safetensors checkpoints: one file, or shards plus an index.

Shard names follow Hugging Face (``{prefix}-00001-of-00003.safetensors``) and the index is
``{prefix}.safetensors.index.json`` with ``metadata.total_size`` = the sum of the tensors' bytes
and a ``weight_map`` sorted by name, as ``save_pretrained`` writes it. Every file is written to a
temporary name in the target directory and renamed into place when complete; the index comes
last.

A file is streamed (:func:`write_safetensors`): the header, then each tensor's bytes straight
from its memory. safetensors' own ``save_file`` first serializes the whole file into one buffer,
a second copy of every tensor in memory.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.checkpoint.dtypes import SAFETENSORS_DTYPES, dtype_for_torch
from adaptgate.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "atomic_write_text",
    "header_bytes",
    "plan_shards",
    "save_tensors",
    "shard_file_name",
    "write_safetensors",
]


def shard_file_name(prefix: str, index: int, count: int) -> str:
    """``{prefix}-0000{index}-of-0000{count}.safetensors`` (1-based index, 5 digits)."""
    return f"{prefix}-{index:05d}-of-{count:05d}.safetensors"


def tensor_bytes(tensor: torch.Tensor) -> int:
    return int(tensor.numel()) * int(tensor.element_size())


def plan_shards(
    sizes: list[int], *, shards: int | None = None, max_shard_bytes: int | None = None
) -> list[list[int]]:
    """Splits tensor positions (in order) into consecutive groups.

    With ``shards=N``: exactly N non-empty groups of about equal bytes. With
    ``max_shard_bytes``: a new group starts when the next tensor would exceed the limit (a single
    larger tensor gets a group of its own), as Hugging Face's splitter does.
    """
    if (shards is None) == (max_shard_bytes is None):
        raise UsageError("give exactly one of shards or max_shard_bytes")
    if max_shard_bytes is not None:
        if max_shard_bytes <= 0:
            raise UsageError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
        groups: list[list[int]] = [[]]
        current = 0
        for i, size in enumerate(sizes):
            if groups[-1] and current + size > max_shard_bytes:
                groups.append([])
                current = 0
            groups[-1].append(i)
            current += size
        return groups if groups[0] else []
    assert shards is not None
    if shards < 1:
        raise UsageError(f"shards must be at least 1, got {shards}")
    if shards > len(sizes):
        raise UsageError(f"cannot split {len(sizes)} tensors into {shards} shards")
    groups = []
    start = 0
    remaining = sum(sizes)
    for k in range(shards):
        left = shards - k
        target = remaining / left
        end = start + 1  # every shard gets at least one tensor
        taken = sizes[start]
        # take more while it brings us closer to the target and leaves a tensor per shard
        while end < len(sizes) - (left - 1) and abs(taken + sizes[end] - target) <= abs(
            taken - target
        ):
            taken += sizes[end]
            end += 1
        if k == shards - 1:
            end = len(sizes)
            taken = sum(sizes[start:end])
        groups.append(list(range(start, end)))
        remaining -= taken
        start = end
    return groups


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def header_bytes(entries: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    """The 8-byte length and the JSON header (``__metadata__`` first, default ``{format: pt}``),
    padded with spaces to a multiple of 8."""
    head = {"__metadata__": metadata if metadata is not None else {"format": "pt"}, **entries}
    body = json.dumps(head, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def write_safetensors(
    tensors: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """One safetensors file, byte for byte what safetensors' ``save_file`` writes (tensors
    ordered by dtype, later-declared types first, then by name), streamed to a temporary name
    and renamed into place."""
    import torch

    types = {name: dtype_for_torch(t.dtype) for name, t in tensors.items()}
    rank = {code: i for i, code in enumerate(SAFETENSORS_DTYPES)}
    order = sorted(tensors, key=lambda n: (-rank[types[n].code], n))
    entries: dict[str, Any] = {}
    offset = 0
    for name in order:
        shape = list(tensors[name].shape)
        if types[name].code == "F4" and shape:  # float4_e2m1fn_x2 holds two values per element
            shape[-1] *= 2
        size = tensor_bytes(tensors[name])
        entries[name] = {"dtype": types[name].code, "shape": shape,
                         "data_offsets": [offset, offset + size]}  # fmt: skip
        offset += size
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.write(header_bytes(entries, metadata))
            for name in order:
                t = tensors[name].detach().cpu().contiguous().reshape(-1)
                if t.numel():
                    fh.write(t.view(torch.uint8).numpy().data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_tensors(
    tensors: Mapping[str, torch.Tensor],
    out_dir: str | os.PathLike[str],
    *,
    shards: int | None = None,
    max_shard_bytes: int | None = None,
    prefix: str = "model",
    index_name: str | None = None,
    always_index: bool = False,
) -> list[str]:
    """Writes ``tensors`` into ``out_dir`` and returns the names of the weight files written.

    ``shards=1`` (the default) writes ``{prefix}.safetensors`` with no index, unless
    ``always_index`` is set (msModelSlim's writer names even a single shard
    ``-00001-of-00001`` and indexes it). More shards, or ``max_shard_bytes``, write numbered
    shards and ``index_name`` (default ``{prefix}.safetensors.index.json``).
    """
    if not tensors:
        raise UsageError("no tensors to save")
    if shards is None and max_shard_bytes is None:
        shards = 1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    contiguous = {name: tensors[name].detach().cpu().contiguous() for name in names}
    sizes = [tensor_bytes(contiguous[name]) for name in names]
    groups = plan_shards(sizes, shards=shards, max_shard_bytes=max_shard_bytes)

    if len(groups) == 1 and not always_index:
        file_name = f"{prefix}.safetensors"
        write_safetensors(contiguous, out / file_name)
        return [file_name]

    written: list[str] = []
    weight_map: dict[str, str] = {}
    for k, group in enumerate(groups, start=1):
        file_name = shard_file_name(prefix, k, len(groups))
        part = {names[i]: contiguous[names[i]] for i in group}
        write_safetensors(part, out / file_name)
        written.append(file_name)
        weight_map.update(dict.fromkeys(part, file_name))
    index = {
        "metadata": {"total_size": sum(sizes)},
        "weight_map": dict(sorted(weight_map.items())),
    }
    index_file = index_name or f"{prefix}.safetensors.index.json"
    atomic_write_text(out / index_file, json.dumps(index, indent=2) + "\n")
    return written
