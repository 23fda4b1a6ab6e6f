"""Architecture facts read from config.json: the model spec table, one typed object.

Handles multimodal wrappers (the language model's fields under ``text_config``), both dtype keys
(``torch_dtype`` and transformers 5's ``dtype``), and the field names each family uses for the same
thing (``num_experts`` / ``n_routed_experts``, ``first_k_dense_replace`` / ``mlp_only_layers``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptgate.errors import ConfigError

Family = Literal["qwen3", "qwen3_moe", "glm4_moe", "deepseek_v3", "generic"]

# model_type -> family whose parameter formula and layer layout apply.
_FAMILIES: dict[str, Family] = {
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3_moe",
    "qwen2_moe": "qwen3_moe",
    "glm4_moe": "glm4_moe",
    "deepseek_v3": "deepseek_v3",
    "deepseek_v2": "deepseek_v3",
    "kimi_k2": "deepseek_v3",
}
# Families whose attention has per-head RMSNorm on q and k without a config flag.
_ALWAYS_QK_NORM = {"qwen3", "qwen3_moe"}


class ArchFacts(BaseModel):
    """What config.json says about the architecture (text model when wrapped)."""

    architecture: str | None
    model_type: str
    family: Family
    is_moe: bool
    is_mla: bool
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    head_dim_explicit: bool = Field(description="head_dim from config, not hidden/heads")
    vocab_size: int
    intermediate_size: int | None
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    experts_per_token: int = 0
    first_dense_layers: int = 0
    mlp_only_layers: list[int] = Field(default_factory=list)
    decoder_sparse_step: int = 1
    moe_layers: list[int] = Field(default_factory=list, description="indices of MoE layers")
    qk_norm: bool = False
    partial_rotary_factor: float = 1.0
    rotary_dim: int
    rope_theta: float | None = None
    rope_scaling: dict[str, Any] | None = None
    mtp_layers: int = 0
    tie_word_embeddings: bool = False
    context_length: int | None = None
    attention_bias: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    dtype: str | None = None

    @property
    def dense_layer_count(self) -> int:
        return self.num_layers - len(self.moe_layers)


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's fields: ``text_config`` merged over the top level when present."""
    inner = config.get("text_config")
    if isinstance(inner, dict):
        return {**config, **inner}
    return config


def config_dtype(config: dict[str, Any]) -> str | None:
    for cfg in (config.get("text_config") or {}, config):
        for key in ("torch_dtype", "dtype"):
            value = cfg.get(key) if isinstance(cfg, dict) else None
            if isinstance(value, str):
                return value.removeprefix("torch.")
    return None


def _int(cfg: dict[str, Any], *keys: str, default: int | None = None) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def _need(cfg: dict[str, Any], *keys: str) -> int:
    value = _int(cfg, *keys)
    if value is None:
        raise ConfigError(
            f"config.json has no {keys[0]}",
            fix="pass the model's original config.json (a text model's fields are required)",
        )
    return value


def _moe_layers(cfg: dict[str, Any], family: Family, layers: int, experts: int) -> list[int]:
    if experts <= 0:
        return []
    if family == "qwen3_moe":
        step = _int(cfg, "decoder_sparse_step", default=1) or 1
        dense = set(cfg.get("mlp_only_layers") or [])
        return [i for i in range(layers) if i not in dense and (i + 1) % step == 0]
    first = _int(cfg, "first_k_dense_replace", default=0) or 0
    freq = _int(cfg, "moe_layer_freq", default=1) or 1
    return [i for i in range(layers) if i >= first and i % freq == 0]


def read_facts(config: dict[str, Any]) -> ArchFacts:
    """Typed architecture facts; raises ConfigError when a required field is missing."""
    cfg = text_config(config)
    model_type = str(cfg.get("model_type") or config.get("model_type") or "unknown")
    family: Family = _FAMILIES.get(model_type, "generic")
    archs = config.get("architectures") or cfg.get("architectures") or [None]
    layers = _need(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _need(cfg, "hidden_size", "n_embd", "d_model")
    heads = _need(cfg, "num_attention_heads", "n_head")
    kv_heads = _int(cfg, "num_key_value_heads", default=heads) or heads
    explicit = _int(cfg, "head_dim")
    is_mla = _int(cfg, "kv_lora_rank") is not None
    head_dim = explicit or hidden // heads
    if is_mla:
        head_dim = (_int(cfg, "qk_nope_head_dim", default=0) or 0) + (
            _int(cfg, "qk_rope_head_dim", default=0) or 0
        )
    experts = _int(cfg, "n_routed_experts", "num_experts", "num_local_experts", default=0) or 0
    moe_layers = _moe_layers(cfg, family, layers, experts)
    partial = float(cfg.get("partial_rotary_factor") or 1.0)
    rope_dim = _int(cfg, "qk_rope_head_dim") if is_mla else None
    raw_rope = cfg.get("rope_parameters")
    rope: dict[str, Any] = raw_rope if isinstance(raw_rope, dict) else {}
    theta = cfg.get("rope_theta", rope.get("rope_theta"))
    scaling = cfg.get("rope_scaling") or (
        rope if rope.get("rope_type", "default") != "default" else None
    )
    return ArchFacts(
        architecture=archs[0] if isinstance(archs, list) and archs else None,
        model_type=model_type,
        family=family,
        is_moe=bool(moe_layers),
        is_mla=is_mla,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        head_dim_explicit=explicit is not None,
        vocab_size=_need(cfg, "vocab_size", "padded_vocab_size"),
        intermediate_size=_int(cfg, "intermediate_size", "ffn_hidden_size"),
        moe_intermediate_size=_int(cfg, "moe_intermediate_size"),
        shared_expert_intermediate_size=_int(cfg, "shared_expert_intermediate_size"),
        n_routed_experts=experts,
        n_shared_experts=_int(cfg, "n_shared_experts", "num_shared_experts", default=0) or 0,
        experts_per_token=_int(cfg, "num_experts_per_tok", "moe_topk", default=0) or 0,
        first_dense_layers=_int(cfg, "first_k_dense_replace", default=0) or 0,
        mlp_only_layers=list(cfg.get("mlp_only_layers") or []),
        decoder_sparse_step=_int(cfg, "decoder_sparse_step", default=1) or 1,
        moe_layers=moe_layers,
        qk_norm=family in _ALWAYS_QK_NORM or bool(cfg.get("use_qk_norm") or cfg.get("qk_norm")),
        partial_rotary_factor=partial,
        rotary_dim=rope_dim if rope_dim is not None else int(head_dim * partial),
        rope_theta=float(theta) if isinstance(theta, int | float) else None,
        rope_scaling=scaling if isinstance(scaling, dict) else None,
        mtp_layers=_int(cfg, "num_nextn_predict_layers", "mtp_num_hidden_layers", default=0) or 0,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        context_length=_int(cfg, "max_position_embeddings", "seq_length"),
        attention_bias=bool(cfg.get("attention_bias") or cfg.get("qkv_bias")),
        q_lora_rank=_int(cfg, "q_lora_rank"),
        kv_lora_rank=_int(cfg, "kv_lora_rank"),
        qk_nope_head_dim=_int(cfg, "qk_nope_head_dim"),
        qk_rope_head_dim=_int(cfg, "qk_rope_head_dim"),
        v_head_dim=_int(cfg, "v_head_dim"),
        dtype=config_dtype(config),
    )
