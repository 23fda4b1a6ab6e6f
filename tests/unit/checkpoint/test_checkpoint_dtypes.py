"""The dtype table against the installed safetensors library itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from ckpt_testlib import raw_safetensors
from safetensors import SafetensorError, safe_open

from adaptgate.checkpoint import SAFETENSORS_DTYPES, dtype_for_torch, torch_dtype_of
from adaptgate.errors import CheckpointFormatError, UnknownKind


def _library_dtype_codes(tmp_path: Path) -> list[str]:
    """safetensors lists every dtype it knows when it meets an unknown one."""
    path = tmp_path / "unknown.safetensors"
    path.write_bytes(raw_safetensors({"t": {"dtype": "NOPE", "shape": [], "data_offsets": [0, 0]}}))
    with pytest.raises(SafetensorError) as info:
        safe_open(str(path), "np")
    listed = re.search(r"expected one of (.*?) at line", str(info.value))
    assert listed, str(info.value)
    return re.findall(r"`(\w+)`", listed.group(1))


def test_table_lists_exactly_the_library_dtypes_in_its_order(tmp_path: Path) -> None:
    assert list(SAFETENSORS_DTYPES) == _library_dtype_codes(tmp_path)
    assert all(code == dt.code for code, dt in SAFETENSORS_DTYPES.items())


@pytest.mark.parametrize("code", list(SAFETENSORS_DTYPES))
def test_bits_match_what_the_library_accepts(tmp_path: Path, code: str) -> None:
    """8 elements take exactly `bits` bytes: the library accepts that size and rejects one more."""
    bits = SAFETENSORS_DTYPES[code].bits
    for size, ok in ((bits, True), (bits + 1, False)):
        path = tmp_path / f"{code}-{size}.safetensors"
        header = {"t": {"dtype": code, "shape": [8], "data_offsets": [0, size]}}
        path.write_bytes(raw_safetensors(header, b"\x00" * size))
        if ok:
            with safe_open(str(path), "np") as f:
                assert f.get_slice("t").get_dtype() == code
        else:
            with pytest.raises(SafetensorError):
                safe_open(str(path), "np")


@pytest.mark.parametrize("code", list(SAFETENSORS_DTYPES))
def test_torch_name_matches_what_the_library_returns(tmp_path: Path, code: str) -> None:
    dt = SAFETENSORS_DTYPES[code]
    path = tmp_path / "t.safetensors"
    nbytes = 8 * dt.bits // 8
    header = {"t": {"dtype": code, "shape": [2, 4], "data_offsets": [0, nbytes]}}
    path.write_bytes(raw_safetensors(header, bytes(range(nbytes))))
    if dt.torch_name is None:  # F6_*: torch has no such dtype, neither does the library
        with pytest.raises(CheckpointFormatError, match="no torch equivalent"):
            torch_dtype_of(code)
        with safe_open(str(path), "pt") as f, pytest.raises(SafetensorError):
            f.get_tensor("t")
        return
    with safe_open(str(path), "pt") as f:
        lib_dtype = f.get_tensor("t").dtype
    assert lib_dtype == getattr(torch, dt.torch_name) == torch_dtype_of(code)
    assert dt.is_float == lib_dtype.is_floating_point
    assert dtype_for_torch(lib_dtype) is dt
    assert dtype_for_torch(dt.torch_name) is dt
    assert dtype_for_torch(f"torch.{dt.torch_name}") is dt


def test_unknown_torch_dtype_is_a_one_line_unknown_kind() -> None:
    with pytest.raises(UnknownKind) as info:
        dtype_for_torch(torch.complex128)
    assert "complex128" in str(info.value) and "\n" not in str(info.value)
    assert info.value.fix and "bfloat16" in info.value.fix


def test_unknown_code_in_torch_dtype_of() -> None:
    with pytest.raises(CheckpointFormatError, match="F7"):
        torch_dtype_of("F7")
