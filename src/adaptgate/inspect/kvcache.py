"""KV-cache bytes per token, as vLLM allocates it (formats.md §6).

GQA/MHA: layers x 2 (K and V) x kv_heads x head_dim x dtype bytes. Under tensor parallelism each
rank holds kv_heads_per_rank = max(1, kv_heads // tp) heads: once tp exceeds the KV heads, heads are
replicated, not split further. MLA (DeepSeek-V3): layers x (kv_lora_rank + qk_rope_head_dim) x
dtype bytes, no factor 2, the same latent on every rank. An MTP draft layer adds its own layer of KV
when speculative decoding uses it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from adaptgate.inspect.facts import ArchFacts

# KV-cache element sizes: "auto" keeps the model dtype (bf16); fp8 e4m3/e5m2 and int8 (Ascend C8).
KV_DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


class KVCacheFacts(BaseModel):
    """Bytes per token for each cache dtype, whole model (tp=1) and per rank at ``tp``."""

    kind: str = Field(description="GQA, MHA or MLA")
    layers: int
    kv_heads: int
    head_dim: int
    latent_dim: int | None = Field(None, description="MLA: kv_lora_rank + qk_rope_head_dim")
    tp: int = 1
    kv_heads_per_rank: int
    bytes_per_token: dict[str, int] = Field(description="dtype -> bytes per token, tp=1")
    bytes_per_token_per_rank: dict[str, int] = Field(description="dtype -> bytes, one rank at tp")
    mtp_layers: int = 0
    bytes_per_token_with_mtp: dict[str, int] = Field(
        default_factory=dict, description="per rank, with the MTP draft layers' KV"
    )


def kv_heads_per_rank(facts: ArchFacts, tp: int) -> int:
    if facts.is_mla:
        return 1
    return max(1, facts.num_kv_heads // tp)


def kv_bytes_per_token(
    facts: ArchFacts, dtype_bytes: int, tp: int = 1, *, mtp: bool = False
) -> int:
    """Bytes one token of context takes in the KV cache of one rank."""
    layers = facts.num_layers + (facts.mtp_layers if mtp else 0)
    if facts.is_mla:
        latent = (facts.kv_lora_rank or 0) + (facts.qk_rope_head_dim or 0)
        return layers * latent * dtype_bytes
    return layers * 2 * kv_heads_per_rank(facts, tp) * facts.head_dim * dtype_bytes


def kv_facts(facts: ArchFacts, tp: int = 1) -> KVCacheFacts:
    kinds = {True: "MLA", False: "MHA" if facts.num_kv_heads == facts.num_heads else "GQA"}
    return KVCacheFacts(
        kind=kinds[facts.is_mla],
        layers=facts.num_layers,
        kv_heads=1 if facts.is_mla else facts.num_kv_heads,
        head_dim=facts.head_dim,
        latent_dim=(facts.kv_lora_rank or 0) + (facts.qk_rope_head_dim or 0)
        if facts.is_mla
        else None,
        tp=tp,
        kv_heads_per_rank=kv_heads_per_rank(facts, tp),
        bytes_per_token={k: kv_bytes_per_token(facts, b) for k, b in KV_DTYPE_BYTES.items()},
        bytes_per_token_per_rank={
            k: kv_bytes_per_token(facts, b, tp) for k, b in KV_DTYPE_BYTES.items()
        },
        mtp_layers=facts.mtp_layers,
        bytes_per_token_with_mtp={
            k: kv_bytes_per_token(facts, b, tp, mtp=True) for k, b in KV_DTYPE_BYTES.items()
        }
        if facts.mtp_layers
        else {},
    )
