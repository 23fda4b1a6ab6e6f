"""The checks of a safetensors header, as the safetensors crate (0.8) makes them.

``SafeTensors::read_metadata`` and ``Metadata::validate`` in ``safetensors/src/tensor.rs``: the
header is UTF-8 JSON (serde_json: no NaN, no lone surrogates, numbers that fit a u64); every
entry has a known dtype, a shape of non-negative ints and ``data_offsets`` ``[begin, end]``;
sorted by offsets the tensors tile the data section from 0 with no hole and no overlap;
``end - begin`` is the tensor's byte size and sub-byte tensors end on a byte boundary.
adaptgate is stricter in one place: a key given twice is an error (serde keeps the last tensor
of a repeated name silently).
"""

from __future__ import annotations

import json
from typing import Any

from adaptgate.checkpoint.dtypes import SAFETENSORS_DTYPES
from adaptgate.errors import CheckpointFormatError

U64_MAX = 2**64 - 1  # JSON numbers must fit the crate's usize
FIX_CORRUPT = (
    "the file is not a valid safetensors file; re-download it or re-save it with safetensors"
)


class _DuplicateKey(Exception):
    pass


def _object_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def valid_text(text: str) -> bool:
    """False for strings holding lone surrogates (from \\ud800 escapes), which serde rejects."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_header_json(raw: bytes, label: str) -> Any:
    def bad(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{label}: safetensors header {why}", fix=FIX_CORRUPT)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(
            text, object_pairs_hook=_object_no_duplicates, parse_constant=_reject_constant
        )
    except _DuplicateKey as exc:
        raise bad(f"names {str(exc)[:200]!r} twice") from None
    except json.JSONDecodeError as exc:
        raise bad(f"is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # huge ints, NaN/Infinity, deep nesting
        raise bad(f"is not JSON: {str(exc)[:200]}") from None


def check_metadata(value: Any, label: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        type(k) is str and type(v) is str and valid_text(k) and valid_text(v)
        for k, v in value.items()
    ):
        raise CheckpointFormatError(
            f"{label}: __metadata__ must map strings to strings", fix=FIX_CORRUPT
        )
    return value


_BITS = {code: dt.bits for code, dt in SAFETENSORS_DTYPES.items()}
Entry = tuple[str, tuple[int, ...], int, int]  # dtype, shape, begin, end


def entry_fast(entry: Any) -> Entry | None:
    """The checks of :func:`check_entry` in few operations; None means "diagnose slowly"."""
    if type(entry) is not dict:
        return None
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if type(code) is not str or type(shape) is not list or type(offsets) is not list:
        return None
    bits = _BITS.get(code)
    if bits is None or len(offsets) != 2:
        return None
    begin, end = offsets
    if type(begin) is not int or type(end) is not int or not 0 <= begin <= end <= U64_MAX:
        return None
    numel = 1
    for d in shape:
        if type(d) is not int or d < 0 or d > U64_MAX:
            return None
        numel *= d
        if numel > U64_MAX:
            return None
    nbits = numel * bits
    if nbits > U64_MAX or nbits % 8 or end - begin != nbits // 8:
        return None
    return code, tuple(shape), begin, end


def check_entry(name: str, entry: Any, label: str) -> Entry:
    """Validates one tensor entry with a message for each fault; returns (dtype, shape, begin,
    end)."""

    def bad(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{label}: tensor {name[:200]!r} {why}", fix=FIX_CORRUPT)

    if not isinstance(entry, dict):
        raise bad("is not a JSON object with dtype, shape and data_offsets")
    code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    dtype = SAFETENSORS_DTYPES.get(code) if type(code) is str else None
    if dtype is None or type(code) is not str:
        raise bad(f"has unknown dtype {str(code)[:40]!r} (known: {', '.join(SAFETENSORS_DTYPES)})")
    if type(shape) is not list or not all(type(d) is int and 0 <= d <= U64_MAX for d in shape):
        raise bad(f"has shape {str(shape)[:80]}, not a list of non-negative integers")
    numel = 1
    for d in shape:  # same overflow rule as the crate's checked_mul fold
        numel *= d
        if numel > U64_MAX:
            raise bad(f"has shape {shape[:8]} whose element count overflows 64 bits")
    nbits = numel * dtype.bits
    if nbits > U64_MAX:
        raise bad(f"has shape {shape[:8]} whose size overflows 64 bits")
    if nbits % 8:
        raise bad(f"of dtype {code} has {numel} elements, which do not fill whole bytes")
    if (
        type(offsets) is not list
        or len(offsets) != 2
        or not all(type(o) is int and 0 <= o <= U64_MAX for o in offsets)
    ):
        raise bad(f"has data_offsets {str(offsets)[:80]}, not [begin, end] non-negative integers")
    begin: int = offsets[0]
    end: int = offsets[1]
    if end < begin:
        raise bad(f"has data_offsets [{begin}, {end}] with end before begin")
    if end - begin != nbits // 8:
        raise bad(
            f"has data_offsets [{begin}, {end}] ({end - begin} bytes) but "
            f"{code}{list(shape)} needs {nbits // 8} bytes"
        )
    return code, tuple(shape), begin, end


def check_tiling(spans: list[tuple[int, int, str]], label: str) -> int:
    """Spans (begin, end, name) sorted by offsets must cover the data section from 0 without
    holes or overlaps; returns the data section's length."""
    start, previous = 0, None
    for begin, end, name in sorted(spans, key=lambda span: span[:2]):
        if begin != start:
            what = (
                f"leaves a hole: it starts at byte {begin} but the data before it ends at {start}"
                if begin > start
                else f"overlaps tensor {previous!r}: it starts at byte {begin}, before {start}"
            )
            raise CheckpointFormatError(f"{label}: tensor {name[:200]!r} {what}", fix=FIX_CORRUPT)
        start, previous = end, name
    return start
