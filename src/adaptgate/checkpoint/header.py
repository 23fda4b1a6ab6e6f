"""Reading a safetensors header with the standard library, validated like safetensors itself.

File layout: 8 bytes little-endian header length ``n`` (at most 100,000,000, safetensors'
``MAX_HEADER_SIZE``), ``n`` bytes of UTF-8 JSON, then the data section, which must end exactly
where the last tensor ends. The entry checks are in :mod:`adaptgate.checkpoint.header_checks`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adaptgate.checkpoint.dtypes import SAFETENSORS_DTYPES
from adaptgate.checkpoint.header_checks import (
    FIX_CORRUPT,
    check_entry,
    check_metadata,
    check_tiling,
    entry_fast,
    parse_header_json,
    valid_text,
)
from adaptgate.checkpoint.jsonfile import json_type_name
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound

MAX_HEADER_SIZE = 100_000_000  # safetensors' MAX_HEADER_SIZE
_FIX_TRUNCATED = "the file is incomplete; re-download or re-save it"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor entry of a safetensors header."""

    name: str
    dtype: str  # safetensors code
    shape: tuple[int, ...]
    file: str  # weight file name relative to the model directory
    data_offsets: tuple[int, int]  # relative to the data section, as in the header

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * SAFETENSORS_DTYPES[self.dtype].bits // 8


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed header of one safetensors file."""

    path: Path
    header_size: int  # the JSON length n
    data_start: int  # 8 + n: file offset of the data section
    file_size: int
    tensors: dict[str, TensorInfo]  # in header order
    metadata: dict[str, str] | None

    @property
    def data_size(self) -> int:
        return self.file_size - self.data_start


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing creates tens of thousands of small acyclic containers; the cyclic collector would
    rescan them over and over (3x the parse time for 20,000 tensors), and finds nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_safetensors_header(path: Path, *, file_label: str | None = None) -> SafetensorsHeader:
    """Parses and validates the header of ``path`` without reading any tensor data."""
    path = Path(path)
    label = file_label or path.name
    try:
        with path.open("rb") as fh:
            file_size = os.fstat(fh.fileno()).st_size
            if file_size < 8:
                raise CheckpointFormatError(
                    f"{label}: truncated safetensors file ({file_size} bytes, shorter than the "
                    "8-byte header length)",
                    fix=_FIX_TRUNCATED,
                )
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > MAX_HEADER_SIZE:
                raise CheckpointFormatError(
                    f"{label}: safetensors header length {n} exceeds safetensors' limit of "
                    f"{MAX_HEADER_SIZE} bytes",
                    fix=FIX_CORRUPT,
                )
            if 8 + n > file_size:
                raise CheckpointFormatError(
                    f"{label}: truncated safetensors file: the header claims {n} bytes but only "
                    f"{file_size - 8} follow the length field",
                    fix=_FIX_TRUNCATED,
                )
            raw = fh.read(n)
    except FileNotFoundError:
        raise CheckpointNotFound(
            f"weight file {label} does not exist ({path})", fix="check the model directory"
        ) from None
    except OSError as exc:
        raise CheckpointNotFound(
            f"cannot read weight file {label}: {exc.strerror or exc}",
            fix="check that the file is a readable regular file",
        ) from None
    if len(raw) != n:
        raise CheckpointFormatError(f"{label}: file shrank while reading", fix=_FIX_TRUNCATED)

    with _gc_paused():
        obj = parse_header_json(raw, label)
        if not isinstance(obj, dict):
            raise CheckpointFormatError(
                f"{label}: safetensors header is a JSON {json_type_name(obj)}, not an object",
                fix=FIX_CORRUPT,
            )
        metadata: dict[str, str] | None = None
        tensors: dict[str, TensorInfo] = {}
        spans: list[tuple[int, int, str]] = []
        for name, entry in obj.items():
            if name == "__metadata__":
                metadata = check_metadata(entry, label)
                continue
            if not name.isascii() and not valid_text(name):
                raise CheckpointFormatError(
                    f"{label}: a tensor name is not valid Unicode (lone surrogate)",
                    fix=FIX_CORRUPT,
                )
            code, shape, begin, end = entry_fast(entry) or check_entry(name, entry, label)
            tensors[name] = TensorInfo(name, code, shape, label, (begin, end))
            spans.append((begin, end, name))

        data_len = check_tiling(spans, label)
    data_start = 8 + n
    actual = file_size - data_start
    if actual < data_len:
        raise CheckpointFormatError(
            f"{label}: truncated safetensors file: the header's offsets need a {data_len}-byte "
            f"data section but the file holds {actual} bytes",
            fix=_FIX_TRUNCATED,
        )
    if actual > data_len:
        raise CheckpointFormatError(
            f"{label}: {actual - data_len} bytes follow the last tensor (data section "
            f"{actual} bytes, header covers {data_len}); safetensors rejects such files",
            fix=FIX_CORRUPT,
        )
    return SafetensorsHeader(path, n, data_start, file_size, tensors, metadata)
