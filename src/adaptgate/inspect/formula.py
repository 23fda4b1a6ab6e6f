"""Parameter counts computed from config.json alone, per family (labelled "computed").

Written from the model definitions (transformers' Qwen3 / Qwen3-MoE / GLM-4-MoE / DeepSeek-V3
modeling files and vLLM's MTP modules), independently of the header counting in ``params.py``.
MTP (``num_nextn_predict_layers``): a full decoder layer (MoE when the model is), ``eh_proj``
(2H x H), ``enorm``, ``hnorm`` and ``shared_head.norm``; DeepSeek-V3 checkpoints also store the MTP
layer's own copies of ``embed_tokens`` and ``shared_head.head`` (that is how 671B + MTP = 685B).
"""

from __future__ import annotations

from adaptgate.inspect.facts import ArchFacts
from adaptgate.inspect.params import CATEGORIES, ParamCounts, active_params


def _attention(f: ArchFacts) -> tuple[int, int]:
    """(linear params incl. biases, norm params) of one attention block."""
    h = f.hidden_size
    if f.is_mla:
        nope, rope = f.qk_nope_head_dim or 0, f.qk_rope_head_dim or 0
        v, kv_rank, heads = f.v_head_dim or 0, f.kv_lora_rank or 0, f.num_heads
        q_dim = heads * (nope + rope)
        if f.q_lora_rank:
            q = h * f.q_lora_rank + f.q_lora_rank * q_dim
            norms = f.q_lora_rank + kv_rank  # q_a_layernorm, kv_a_layernorm
        else:
            q, norms = h * q_dim, kv_rank
        kv = h * (kv_rank + rope) + kv_rank * heads * (nope + v)
        return q + kv + heads * v * h, norms
    q_out, kv_out = f.num_heads * f.head_dim, f.num_kv_heads * f.head_dim
    linear = h * q_out + 2 * h * kv_out + q_out * h
    if f.attention_bias:
        linear += q_out + 2 * kv_out
        if f.family in {"qwen3", "qwen3_moe", "generic"}:
            linear += h  # o_proj bias follows attention_bias there (not in GLM-4-MoE)
    return linear, 2 * f.head_dim if f.qk_norm else 0


def _moe(f: ArchFacts) -> dict[str, int]:
    """Parameters of one MoE MLP block by category."""
    h, mi = f.hidden_size, f.moe_intermediate_size or f.intermediate_size or 0
    out = {"routed_experts": f.n_routed_experts * 3 * h * mi, "router": f.n_routed_experts * h}
    if f.family in {"glm4_moe", "deepseek_v3"}:
        out["router"] += f.n_routed_experts  # e_score_correction_bias
    shared = f.n_shared_experts * mi
    if f.shared_expert_intermediate_size:  # Qwen2-MoE style: one shared expert + its gate
        shared = f.shared_expert_intermediate_size
        out["router"] += h
    out["shared_experts"] = 3 * h * shared
    return out


def _layer(f: ArchFacts, moe: bool) -> dict[str, int]:
    attn, qk_norms = _attention(f)
    counts: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    counts["attention"] = attn
    counts["norms"] = qk_norms + 2 * f.hidden_size
    if moe:
        counts.update(_moe(f))
    else:
        counts["mlp_dense"] = 3 * f.hidden_size * (f.intermediate_size or 0)
    return counts


def count_from_config(f: ArchFacts) -> ParamCounts:
    """Computed counts for the main model and, apart, the MTP layers."""
    total: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
    moe_set = set(f.moe_layers)
    dense_layer, moe_layer = _layer(f, False), _layer(f, True)
    for i in range(f.num_layers):
        for key, value in (moe_layer if i in moe_set else dense_layer).items():
            total[key] += value
    h, v = f.hidden_size, f.vocab_size
    total["embeddings"] = v * h
    total["lm_head"] = 0 if f.tie_word_embeddings else v * h
    total["norms"] += h
    mtp = 0
    if f.mtp_layers:
        per = sum((moe_layer if f.is_moe else dense_layer).values()) + 2 * h * h + 3 * h
        if f.family == "deepseek_v3":
            per += 2 * v * h
        mtp = per * f.mtp_layers
    return ParamCounts(
        source="computed",
        total=sum(total.values()),
        by_category=total,
        active=active_params(total, f),
        mtp=mtp,
        tied_lm_head=f.tie_word_embeddings,
    )
