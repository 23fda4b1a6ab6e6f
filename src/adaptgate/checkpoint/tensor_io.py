"""Reading one tensor's bytes: safetensors by offset, pickle (opt-in) with weights_only=True."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.checkpoint.dtypes import torch_dtype_of
from adaptgate.checkpoint.header import SafetensorsHeader, TensorInfo
from adaptgate.errors import CheckpointFormatError

if TYPE_CHECKING:
    import torch

_STATE_DICT_KEYS = ("state_dict", "model", "module")


def read_safetensors_tensor(header: SafetensorsHeader, info: TensorInfo) -> torch.Tensor:
    """Reads exactly ``info.nbytes`` bytes at the tensor's offset and views them as a tensor."""
    import torch

    if sys.byteorder != "little":  # pragma: no cover - safetensors data is little-endian
        raise CheckpointFormatError(
            "reading tensors on a big-endian host is not supported",
            fix="run adaptgate on a little-endian machine",
        )
    dtype = torch_dtype_of(info.dtype)
    shape = list(info.shape)
    if info.dtype == "F4":  # torch packs two F4 values per byte: float4_e2m1fn_x2
        if not shape or shape[-1] % 2:
            raise CheckpointFormatError(
                f"{info.file}: F4 tensor {info.name!r} of shape {shape} has an odd last "
                "dimension, which torch's float4_e2m1fn_x2 cannot hold",
                fix="read the raw bytes instead",
            )
        shape[-1] //= 2
    nbytes = info.nbytes
    if nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    begin = header.data_start + info.data_offsets[0]
    buf = bytearray(nbytes)
    with header.path.open("rb") as fh:
        fh.seek(begin)
        got = fh.readinto(buf)
    if got != nbytes:
        raise CheckpointFormatError(
            f"{info.file}: tensor {info.name!r} is cut short ({got} of {nbytes} bytes); the file "
            "changed or is truncated",
            fix="re-download or re-save the file",
        )
    return torch.frombuffer(buf, dtype=dtype).reshape(shape)


def load_pickle_tensors(path: Path, label: str) -> dict[str, torch.Tensor]:
    """The tensors of a pickle checkpoint, loaded with ``weights_only=True`` (memory-mapped when
    the file is in torch's zip format). Non-tensor entries are skipped."""
    import torch

    try:
        try:
            obj: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a format error
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointFormatError(
            f"{label}: cannot load pickle weights with weights_only=True "
            f"({type(exc).__name__}: {first})",
            fix="convert the checkpoint to safetensors with the tool that wrote it",
        ) from None
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict):
        raise CheckpointFormatError(
            f"{label}: pickle holds a {type(obj).__name__}, not a state dict",
            fix="save a dict of tensor name -> tensor",
        )
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
