"""Property tests for read_safetensors_header.

1. Arbitrary and mutated files never raise anything but CheckpointFormatError, and (mutations)
   adaptgate accepts a file exactly when the safetensors library does.
2. Files written by safetensors.torch / safetensors.numpy round-trip: every TensorInfo has the
   dtype and shape the library reports, and its offsets locate exactly the tensor's bytes.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from safetensors import SafetensorError, safe_open

from adaptgate.checkpoint import SAFETENSORS_DTYPES, SafetensorsHeader, read_safetensors_header
from adaptgate.errors import CheckpointFormatError

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _ours(content: bytes) -> SafetensorsHeader | None:
    """Parses with adaptgate; None when rejected (only CheckpointFormatError may escape)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.safetensors"
        path.write_bytes(content)
        try:
            return read_safetensors_header(path)
        except CheckpointFormatError as exc:
            assert "\n" not in str(exc)
            return None


def _library(content: bytes) -> dict[str, tuple[str, list[int]]] | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.safetensors"
        path.write_bytes(content)
        try:
            with safe_open(str(path), "np") as f:
                return {
                    k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape())
                    for k in f.keys()  # noqa: SIM118 - safe_open is not iterable
                }
        except SafetensorError:
            return None


def _has_duplicate_keys(content: bytes) -> bool:
    """safetensors keeps the last of duplicate names; adaptgate refuses them (documented)."""
    dup = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal dup
        dup = dup or len({k for k, _ in pairs}) != len(pairs)
        return dict(pairs)

    try:
        n = struct.unpack("<Q", content[:8])[0]
        json.loads(content[8 : 8 + n].decode("utf-8"), object_pairs_hook=hook)
    except Exception:  # noqa: BLE001 - not parseable: no duplicates to speak of
        return False
    return dup


def _agree(content: bytes) -> None:
    ours, lib = _ours(content), _library(content)
    if _has_duplicate_keys(content):
        assert ours is None
        return
    assert (ours is not None) == (lib is not None), (content[:300], ours, lib)
    if ours is not None and lib is not None:
        assert {k: (i.dtype, list(i.shape)) for k, i in ours.tensors.items()} == lib


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(content: bytes) -> None:
    _agree(content)


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=40), st.integers(-3, 3))
def test_arbitrary_header_with_consistent_length(header: bytes, data: bytes, skew: int) -> None:
    _agree(struct.pack("<Q", max(0, len(header) + skew)) + header + data)


# --- valid headers, then mutated --------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_codes = st.sampled_from(list(SAFETENSORS_DTYPES))
_entries = st.lists(
    st.tuples(st.text(min_size=1, max_size=6), _codes, st.lists(st.integers(0, 4), max_size=3)),
    max_size=5,
    unique_by=lambda e: e[0],
)


def _valid_file(entries: list[tuple[str, str, list[int]]]) -> tuple[dict[str, Any], bytes]:
    header: dict[str, Any] = {}
    offset = 0
    for name, code, dims in entries:
        if name == "__metadata__":
            continue
        shape = list(dims)
        bits = SAFETENSORS_DTYPES[code].bits * int(np.prod(shape, dtype=np.int64))
        if bits % 8:
            shape.append(4)  # 4 elements of F4 / F6 fill whole bytes
            bits *= 4
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + bits // 8]}
        offset += bits // 8
    return header, bytes(i % 251 for i in range(offset))


def _pack(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@FUZZ
@given(_entries)
def test_valid_generated_headers_are_accepted(entries: list[tuple[str, str, list[int]]]) -> None:
    header, data = _valid_file(entries)
    content = _pack(header, data)
    assert _ours(content) is not None
    _agree(content)


@FUZZ
@given(_entries, st.data())
def test_json_level_mutations(
    entries: list[tuple[str, str, list[int]]], data: st.DataObject
) -> None:
    header, body = _valid_file(entries)
    kinds = ["field", "drop", "offset", "shift", "top", "metadata", "data"]
    kind = data.draw(st.sampled_from(kinds))
    names = list(header)
    if kind == "field" and names:
        name = data.draw(st.sampled_from(names))
        key = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]))
        header[name][key] = data.draw(_json)
    elif kind == "drop" and names:
        name = data.draw(st.sampled_from(names))
        del header[name][data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))]
    elif kind == "offset" and names:
        name = data.draw(st.sampled_from(names))
        i = data.draw(st.integers(0, 1))
        header[name]["data_offsets"][i] += data.draw(st.integers(-3, 3))
    elif kind == "shift" and names:  # same size, moved: holes, overlaps, out of range
        name = data.draw(st.sampled_from(names))
        delta = data.draw(st.integers(-4, 4))
        header[name]["data_offsets"] = [o + delta for o in header[name]["data_offsets"]]
        body += bytes(data.draw(st.sampled_from([0, max(0, delta)])))
    elif kind == "top":
        header[data.draw(st.text(max_size=4))] = data.draw(_json)
    elif kind == "metadata":
        header["__metadata__"] = data.draw(_json)
    else:
        body = data.draw(st.sampled_from([body[:-1], body + b"\x00", body[1:]]))
    _agree(_pack(header, body))


@FUZZ
@given(_entries, st.data())
def test_byte_level_mutations(
    entries: list[tuple[str, str, list[int]]], data: st.DataObject
) -> None:
    header, body = _valid_file(entries)
    content = bytearray(_pack(header, body))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(content) - 1))
        content[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(content)))
    _agree(bytes(content[:cut]) if data.draw(st.booleans()) else bytes(content))


# --- round trips through the library's writers ------------------------------------------------

_TORCH_CODES = [c for c, d in SAFETENSORS_DTYPES.items() if d.torch_name]


def _random_torch(code: str, shape: list[int], seed: int) -> torch.Tensor:
    dtype = getattr(torch, SAFETENSORS_DTYPES[code].torch_name or "")
    if code == "F4":  # packed: build the bytes, view them as float4_e2m1fn_x2
        shape = [*shape[:-1], max(1, shape[-1] // 2)] if shape else [1]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8))
    if code == "BOOL":
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def _check_roundtrip(path: Path, tensors: dict[str, Any], as_bytes: Any) -> None:
    header = read_safetensors_header(path)
    blob = path.read_bytes()
    with safe_open(str(path), "np") as f:
        assert set(header.tensors) == set(f.keys()) == set(tensors)
        assert header.metadata == f.metadata()
        for name, info in header.tensors.items():
            assert info.dtype == f.get_slice(name).get_dtype()
            assert list(info.shape) == f.get_slice(name).get_shape()
            begin, end = info.data_offsets
            assert end - begin == info.nbytes
            assert blob[header.data_start + begin : header.data_start + end] == as_bytes(
                tensors[name]
            )


@settings(max_examples=120, deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"),
        st.tuples(
            st.sampled_from(_TORCH_CODES),
            st.lists(st.integers(0, 5), max_size=3),
            st.integers(0, 2**32),
        ),
        max_size=6,
    ),
    st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
def test_roundtrip_safetensors_torch(
    spec: dict[str, tuple[str, list[int], int]], metadata: Any
) -> None:
    from safetensors.torch import save_file

    # safetensors 0.8 writes '{},"__metadata__":{}}' for no tensors and empty metadata, which its
    # own reader rejects too: see test_library_writer_bug_empty_metadata.
    assume(spec or metadata != {})
    tensors = {name: _random_torch(code, shape, seed) for name, (code, shape, seed) in spec.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        _check_roundtrip(path, tensors, lambda t: t.reshape(-1).view(torch.uint8).numpy().tobytes())


_NUMPY = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16, np.int32,
          np.uint32, np.int64, np.uint64, np.bool_, np.complex64]  # fmt: skip


def _random_numpy(dt: Any, shape: list[int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dt is np.bool_:
        return np.asarray(rng.integers(0, 2, shape).astype(np.bool_))
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
    return rng.integers(0, 256, nbytes, dtype=np.uint8).view(dt).reshape(shape)


@settings(max_examples=120, deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"),
        st.tuples(
            st.sampled_from(_NUMPY), st.lists(st.integers(0, 5), max_size=3), st.integers(0, 2**32)
        ),
        max_size=6,
    )
)
def test_roundtrip_safetensors_numpy(spec: dict[str, tuple[Any, list[int], int]]) -> None:
    from safetensors.numpy import save_file

    tensors = {name: _random_numpy(dt, shape, seed) for name, (dt, shape, seed) in spec.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "n.safetensors"
        save_file(tensors, str(path))
        _check_roundtrip(path, tensors, lambda a: np.ascontiguousarray(a).tobytes())


def test_library_writer_bug_empty_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "e.safetensors"
    save_file({}, str(path), metadata={})
    assert _library(path.read_bytes()) is None
    assert _ours(path.read_bytes()) is None
