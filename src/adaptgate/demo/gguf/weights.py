"""The GGUF's tensors as Hugging Face bf16 tensors: exact float32 dequantization by the ``gguf``
library, Q/K rows put back in Hugging Face order, then one round-to-nearest-even cast to bf16."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from adaptgate.console import progress
from adaptgate.demo.gguf.metadata import LlamaHParams
from adaptgate.demo.gguf.names import hf_name, qk_heads, unpermute_qk
from adaptgate.errors import CheckpointFormatError

if TYPE_CHECKING:
    import torch
    from gguf import GGUFReader

# ggml types the gguf library dequantizes exactly to float32 (plain floats and the block formats
# llama.cpp writes for llama models)
SUPPORTED_TYPES = (
    "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
)  # fmt: skip


def tensor_names(reader: GGUFReader, hp: LlamaHParams) -> dict[str, str]:
    """``{hf_name: gguf_name}`` for every tensor, validating names, types and duplicates."""
    out: dict[str, str] = {}
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise CheckpointFormatError(
                f"GGUF tensor {tensor.name!r} has type {kind}, which is not supported",
                fix=f"use a GGUF whose tensors are {', '.join(SUPPORTED_TYPES)}",
            )
        name = hf_name(tensor.name, hp.layers)
        if name in out:
            raise CheckpointFormatError(f"GGUF tensor {tensor.name!r} is stored twice")
        out[name] = tensor.name
    return out


def bf16_tensors(
    reader: GGUFReader, hp: LlamaHParams, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """Every tensor of ``shapes`` (Hugging Face name -> shape, in that order) in bf16. The GGUF
    must hold exactly these tensors with these shapes."""
    import numpy as np
    import torch
    from gguf.quants import dequantize

    names = tensor_names(reader, hp)
    missing = [n for n in shapes if n not in names]
    extra = [names[n] for n in names if n not in shapes]
    if missing or extra:
        what = f"lacks {missing[0]!r}" if missing else f"has the extra tensor {extra[0]!r}"
        raise CheckpointFormatError(f"the GGUF {what} for a llama model of its metadata")
    by_gguf = {t.name: t for t in reader.tensors}
    out: dict[str, torch.Tensor] = {}
    with progress(len(shapes), "dequantizing GGUF tensors", unit="tensors") as bar:
        for name, shape in shapes.items():
            tensor = by_gguf[names[name]]
            values = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
            if tuple(values.shape) != tuple(shape):
                raise CheckpointFormatError(
                    f"GGUF tensor {tensor.name!r} has shape {tuple(values.shape)}, "
                    f"expected {tuple(shape)}"
                )
            heads = qk_heads(tensor.name, hp.heads, hp.kv_heads)
            if heads is not None:
                values = unpermute_qk(values, heads)
            values = np.ascontiguousarray(values)
            if not values.flags.writeable:  # a float32 tensor is a view of the memory map
                values = values.copy()
            out[name] = torch.from_numpy(values).to(torch.bfloat16)
            bar.advance()
    return out
