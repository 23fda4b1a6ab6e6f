"""read_safetensors_header: valid files, and every way a header can be wrong."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from ckpt_testlib import assert_one_line
from safetensors.torch import save_file

from adaptgate.checkpoint import MAX_HEADER_SIZE, TensorInfo, read_safetensors_header
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound


def _entry(dtype: str, shape: list[Any], begin: Any, end: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_valid_file_written_by_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    tensors = {
        "b.weight": torch.randn(3, 5).to(torch.bfloat16),
        "a.weight": torch.randn(4, 2).to(torch.float8_e4m3fn),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7, dtype=torch.int8),
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    header = read_safetensors_header(path)
    assert header.metadata == {"format": "pt"}
    assert header.file_size == path.stat().st_size
    assert header.data_start == 8 + header.header_size
    assert header.data_size == sum(t.numel() * t.element_size() for t in tensors.values())
    a = header.tensors["a.weight"]
    assert a == TensorInfo("a.weight", "F8_E4M3", (4, 2), "model.safetensors", a.data_offsets)
    assert (a.numel, a.nbytes) == (8, 8)
    assert header.tensors["scalar"].shape == () and header.tensors["scalar"].nbytes == 4
    assert header.tensors["empty"].nbytes == 0
    # header order is kept (safetensors writes names sorted by alignment, then name)
    raw = path.read_bytes()[8 : header.data_start]
    assert list(header.tensors) == [k for k in json.loads(raw) if k != "__metadata__"]


def test_file_label_names_the_tensors_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    save_file({"t": torch.ones(2)}, str(path))
    header = read_safetensors_header(path, file_label="sub/x.safetensors")
    assert header.tensors["t"].file == "sub/x.safetensors"


def test_empty_header_is_valid(write_raw: Callable[..., Path]) -> None:
    header = read_safetensors_header(write_raw("e.safetensors", header_bytes=b"{}      "))
    assert header.tensors == {} and header.metadata is None


def test_extra_entry_fields_and_null_metadata_are_accepted_like_safetensors(
    write_raw: Callable[..., Path],
) -> None:
    entry = {**_entry("U8", [2], 0, 2), "comment": "ignored"}
    path = write_raw("x.safetensors", {"__metadata__": None, "t": entry}, b"ab")
    assert read_safetensors_header(path).tensors["t"].shape == (2,)


def test_zero_sized_tensors_may_share_an_offset(write_raw: Callable[..., Path]) -> None:
    header = {
        "a": _entry("F32", [0], 4, 4),
        "b": _entry("F32", [1], 0, 4),
        "c": _entry("I8", [0], 4, 4),
    }
    assert len(read_safetensors_header(write_raw("z.safetensors", header, b"abcd")).tensors) == 3


def test_packed_f4_must_fill_whole_bytes(write_raw: Callable[..., Path]) -> None:
    read_safetensors_header(write_raw("ok.safetensors", {"t": _entry("F4", [2, 2], 0, 2)}, b"ab"))
    with pytest.raises(CheckpointFormatError, match="whole bytes"):
        read_safetensors_header(write_raw("bad.safetensors", {"t": _entry("F4", [3], 0, 2)}, b"ab"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound) as info:
        read_safetensors_header(tmp_path / "nope.safetensors")
    assert_one_line(info.value, "nope.safetensors")


T = _entry("U8", [4], 0, 4)
BAD_HEADERS: dict[str, tuple[Any, bytes, str]] = {
    # name: (header object, data section, expected words in the message)
    "header not an object": ([1, 2], b"", "not an object"),
    "unknown dtype": ({"w": _entry("U7", [4], 0, 4)}, b"abcd", "unknown dtype 'U7'"),
    "dtype not a string": ({"w": _entry(["U8"], [4], 0, 4)}, b"abcd", "unknown dtype"),
    "entry not an object": ({"w": [1, 2]}, b"", "not a JSON object"),
    "missing shape": ({"w": {"dtype": "U8", "data_offsets": [0, 4]}}, b"abcd", "shape None"),
    "negative dim": ({"w": _entry("U8", [-4], 0, 4)}, b"abcd", "non-negative"),
    "float dim": ({"w": _entry("U8", [4.0], 0, 4)}, b"abcd", "non-negative integers"),
    "bool dim": ({"w": _entry("U8", [True], 0, 1)}, b"a", "non-negative integers"),
    "dim beyond u64": ({"w": _entry("U8", [2**64], 0, 0)}, b"", "non-negative integers"),
    "numel overflow": ({"w": _entry("U8", [2**40, 2**40, 0], 0, 0)}, b"", "overflows"),
    "offsets not a pair": ({"w": {**T, "data_offsets": [0, 4, 8]}}, b"abcd", "[begin, end]"),
    "offsets not ints": ({"w": _entry("U8", [4], "0", 4)}, b"abcd", "[begin, end]"),
    "negative offset": ({"w": _entry("U8", [4], -1, 3)}, b"abcd", "[begin, end]"),
    "end before begin": ({"w": _entry("U8", [0], 4, 0)}, b"abcd", "end before begin"),
    "size mismatch": ({"w": _entry("F32", [2], 0, 4)}, b"abcd", "needs 8 bytes"),
    "hole at start": ({"w": _entry("U8", [4], 2, 6)}, b"abcdef", "hole"),
    "hole between": (
        {"a": _entry("U8", [2], 0, 2), "b": _entry("U8", [2], 4, 6)},
        b"abcdef",
        "hole",
    ),
    "overlap": (
        {"a": _entry("U8", [4], 0, 4), "b": _entry("U8", [4], 2, 6)},
        b"abcdef",
        "overlaps tensor 'a'",
    ),
    "same range twice": ({"a": T, "b": T}, b"abcd", "overlaps"),
    "data section short": ({"w": T}, b"abc", "truncated"),
    "offsets out of range": ({"w": _entry("U8", [4], 100, 104)}, b"abcd", "hole"),
    "trailing bytes": ({"w": T}, b"abcdXY", "2 bytes follow the last tensor"),
    "metadata not a dict": ({"__metadata__": ["a"], "w": T}, b"abcd", "__metadata__"),
    "metadata value not str": ({"__metadata__": {"k": 1}, "w": T}, b"abcd", "__metadata__"),
}


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_bad_header(write_raw: Callable[..., Path], case: str) -> None:
    header, data, words = BAD_HEADERS[case]
    path = write_raw("shard-1.safetensors", header, data)
    with pytest.raises(CheckpointFormatError) as info:
        read_safetensors_header(path)
    assert_one_line(info.value, "shard-1.safetensors", words)


def _raw(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


RAW_CASES: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "shorter than the 8-byte"),
    "7 bytes": (b"\x02\x00\x00\x00\x00\x00\x00", "shorter than the 8-byte"),
    "header length beyond file": (struct.pack("<Q", 50) + b"{}", "truncated"),
    "header length beyond limit": (struct.pack("<Q", MAX_HEADER_SIZE + 1) + b"{}", "limit"),
    "header length near 2**64": (b"\xff" * 8 + b"{}", "limit"),
    "not utf-8": (_raw(b"{\xff}"), "not UTF-8"),
    "not json": (_raw(b'{"a": 1,}'), "not JSON: Expecting property name"),
    "json with BOM": (_raw(b"\xef\xbb\xbf{}"), "not JSON"),
    "NaN": (_raw(b'{"a": NaN}'), "not JSON"),
    "deep nesting": (_raw(b"[" * 100_000 + b"]" * 100_000), "not JSON"),
    "huge int": (_raw(b'{"a":' + b"9" * 5004 + b"}"), "not JSON"),
    "duplicate name": (
        _raw(b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8"}}'),
        "names 'a' twice",
    ),
    "lone surrogate name": (
        _raw(b'{"\\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "surrogate",
    ),
    "lone surrogate metadata": (_raw(b'{"__metadata__":{"k":"\\udc00"}}'), "__metadata__"),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_bad_raw_file(tmp_path: Path, case: str) -> None:
    content, words = RAW_CASES[case]
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError) as info:
        read_safetensors_header(path)
    assert_one_line(info.value, "w.safetensors", words)
