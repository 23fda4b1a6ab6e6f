"""The element types a safetensors file can declare, and their torch names.

The table mirrors ``enum Dtype`` and ``Dtype::bitsize`` of the safetensors crate (0.8:
``safetensors/src/tensor.rs``) and the torch mapping of its Python binding (``get_pydtype`` in
``bindings/python/src/lib.rs``). torch is never imported here: the mapping is by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptgate.errors import CheckpointFormatError, UnknownKind

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DType:
    """One safetensors element type."""

    code: str  # as written in a header: "BF16", "F8_E4M3", ...
    bits: int  # bits per element; F4 is 4 and F6_* are 6 (packed, no padding)
    torch_name: str | None  # attribute of the torch module, None when torch has no such dtype
    is_float: bool

    @property
    def packed(self) -> bool:
        """True for sub-byte types, where a tensor's bit count must be a multiple of 8."""
        return self.bits < 8


def _dt(code: str, bits: int, torch_name: str | None, is_float: bool) -> tuple[str, DType]:
    return code, DType(code, bits, torch_name, is_float)


# In the crate's declaration order (increasing alignment).
SAFETENSORS_DTYPES: dict[str, DType] = dict(
    [
        _dt("BOOL", 8, "bool", False),
        # F4 (MXFP4 e2m1): torch stores two values per byte as float4_e2m1fn_x2, so a torch
        # tensor of an F4 entry has its last dimension halved (what safetensors itself does).
        _dt("F4", 4, "float4_e2m1fn_x2", True),
        _dt("F6_E2M3", 6, None, True),
        _dt("F6_E3M2", 6, None, True),
        _dt("U8", 8, "uint8", False),
        _dt("I8", 8, "int8", False),
        _dt("F8_E5M2", 8, "float8_e5m2", True),
        _dt("F8_E4M3", 8, "float8_e4m3fn", True),
        _dt("F8_E8M0", 8, "float8_e8m0fnu", True),
        _dt("F8_E4M3FNUZ", 8, "float8_e4m3fnuz", True),
        _dt("F8_E5M2FNUZ", 8, "float8_e5m2fnuz", True),
        _dt("I16", 16, "int16", False),
        _dt("U16", 16, "uint16", False),
        _dt("F16", 16, "float16", True),
        _dt("BF16", 16, "bfloat16", True),
        _dt("I32", 32, "int32", False),
        _dt("U32", 32, "uint32", False),
        _dt("F32", 32, "float32", True),
        _dt("C64", 64, "complex64", False),
        _dt("F64", 64, "float64", True),
        _dt("I64", 64, "int64", False),
        _dt("U64", 64, "uint64", False),
    ]
)

_BY_TORCH_NAME: dict[str, DType] = {
    d.torch_name: d for d in SAFETENSORS_DTYPES.values() if d.torch_name is not None
}


def dtype_for_torch(torch_dtype: Any) -> DType:
    """The safetensors type of a torch dtype (``torch.bfloat16`` or the string ``"bfloat16"``)."""
    name = str(torch_dtype).removeprefix("torch.")
    try:
        return _BY_TORCH_NAME[name]
    except KeyError:
        valid = ", ".join(sorted(_BY_TORCH_NAME))
        raise UnknownKind(
            f"torch dtype {name!r} has no safetensors type",
            fix=f"cast the tensor to one of: {valid}",
        ) from None


def torch_dtype_of(code: str) -> torch.dtype:
    """The torch dtype for a safetensors code; imports torch."""
    import torch

    dt = SAFETENSORS_DTYPES.get(code)
    if dt is None:
        raise CheckpointFormatError(
            f"unknown safetensors dtype {code!r}",
            fix=f"use one of: {', '.join(SAFETENSORS_DTYPES)}",
        )
    value = getattr(torch, dt.torch_name, None) if dt.torch_name else None
    if value is None:
        raise CheckpointFormatError(
            f"safetensors dtype {code} has no torch equivalent in torch {torch.__version__}",
            fix="read the raw bytes and unpack them yourself, or upgrade torch",
        )
    return value
