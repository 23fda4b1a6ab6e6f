"""Exact parameter counts from tensor headers, split by what each tensor is.

Scales, offsets and KV-cache scales are quantization metadata: their bytes are counted apart and
they are not parameters. Packed int4 (compressed-tensors ``weight_packed``, 8 values per int32)
counts the unpacked values. MTP layers (index >= num_hidden_layers, or ``mtp.*``) are reported
beside the main total, never inside it. The config-only formula lives in ``formula.py`` and shares
no code with this module, so each checks the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from adaptgate.formats.detect import is_quant_metadata
from adaptgate.inspect.facts import ArchFacts

Category = Literal[
    "embeddings",
    "lm_head",
    "attention",
    "mlp_dense",
    "routed_experts",
    "shared_experts",
    "router",
    "norms",
    "other",
]
CATEGORIES: tuple[Category, ...] = (
    "embeddings",
    "lm_head",
    "attention",
    "mlp_dense",
    "routed_experts",
    "shared_experts",
    "router",
    "norms",
    "other",
)
# Categories whose Linear weights a quantized checkpoint stores in 8 (or 4) bits.
QUANTIZABLE: frozenset[Category] = frozenset(
    {"attention", "mlp_dense", "routed_experts", "shared_experts"}
)
_DTYPE_BITS = {"F64": 64, "I64": 64, "U64": 64, "F32": 32, "I32": 32, "U32": 32, "F16": 16}
_DTYPE_BITS |= {"BF16": 16, "I16": 16, "U16": 16, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class TensorLike(Protocol):
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


class ParamCounts(BaseModel):
    """Parameter counts of the main model (MTP apart), from headers or from the config."""

    source: Literal["headers", "computed"]
    total: int = Field(description="main model, MTP excluded")
    by_category: dict[str, int]
    active: int = Field(description="per token: all but routed experts + k/n of routed experts")
    mtp: int = 0
    tied_lm_head: bool = False
    tensor_count: int | None = None
    bytes_by_dtype: dict[str, int] = Field(default_factory=dict)
    stored_bytes: int | None = None
    quant_metadata_bytes: int | None = None
    quant_metadata_tensors: int | None = None
    bytes_by_category: dict[str, int] = Field(
        default_factory=dict, description="stored bytes of parameters per category (headers)"
    )

    @property
    def non_embedding(self) -> int:
        return (
            self.total - self.by_category.get("embeddings", 0) - self.by_category.get("lm_head", 0)
        )


def dtype_bits(code: str) -> int:
    return _DTYPE_BITS.get(code, 8)


def classify(name: str, num_layers: int) -> tuple[Category, bool]:
    """(category, is_mtp) for one parameter tensor name."""
    m = _LAYER_RE.search(name)
    is_mtp = name.startswith(("mtp.", "model.mtp.")) or (m is not None and int(m[1]) >= num_layers)
    leaf = name.rsplit(".", 2)
    if "embed_tokens" in name or name.endswith(("wte.weight", "word_embeddings.weight")):
        return "embeddings", is_mtp
    if name.startswith("lm_head") or "shared_head.head" in name:
        return "lm_head", is_mtp
    if any("norm" in part for part in leaf[-2:]):
        return "norms", is_mtp
    if ".shared_expert" in name:
        return "shared_experts", is_mtp
    if ".experts." in name:
        return "routed_experts", is_mtp
    if re.search(r"\.(mlp\.gate|router)\.", name) or name.endswith("mlp.gate.weight"):
        return "router", is_mtp
    if ".self_attn." in name or ".attention." in name or ".attn." in name:
        return "attention", is_mtp
    if ".mlp." in name or ".feed_forward." in name:
        return "mlp_dense", is_mtp
    return "other", is_mtp


def _numel(name: str, t: TensorLike) -> int:
    n = 1
    for d in t.shape:
        n *= d
    if name.endswith("weight_packed") and t.dtype == "I32":
        n *= 8  # compressed-tensors pack-quantized int4: 8 values per int32
    return n


def count_from_headers(tensors: Mapping[str, TensorLike], facts: ArchFacts) -> ParamCounts:
    """Sum header shapes by category; scales and offsets go to quantization metadata."""
    by_cat: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    bytes_cat: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    by_dtype: dict[str, int] = {}
    mtp = meta_bytes = meta_count = stored = 0
    for name, t in tensors.items():
        elements = 1
        for d in t.shape:
            elements *= d
        nbytes = elements * dtype_bits(t.dtype) // 8
        stored += nbytes
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + nbytes
        if is_quant_metadata(name):
            meta_bytes += nbytes
            meta_count += 1
            continue
        category, is_mtp = classify(name, facts.num_layers)
        if is_mtp:
            mtp += _numel(name, t)
            continue
        by_cat[category] += _numel(name, t)
        bytes_cat[category] += nbytes
    tied = facts.tie_word_embeddings and by_cat["lm_head"] == 0
    return ParamCounts(
        source="headers",
        total=sum(by_cat.values()),
        by_category=by_cat,
        active=active_params(by_cat, facts),
        mtp=mtp,
        tied_lm_head=tied,
        tensor_count=len(tensors),
        bytes_by_dtype=by_dtype,
        stored_bytes=stored,
        quant_metadata_bytes=meta_bytes,
        quant_metadata_tensors=meta_count,
        bytes_by_category=bytes_cat,
    )


def active_params(by_cat: Mapping[str, int], facts: ArchFacts) -> int:
    """Everything but routed experts, plus experts_per_token / n_routed of the routed experts."""
    total = sum(by_cat.values())
    routed = by_cat.get("routed_experts", 0)
    if not routed or not facts.n_routed_experts:
        return total
    return total - routed + routed * facts.experts_per_token // facts.n_routed_experts
