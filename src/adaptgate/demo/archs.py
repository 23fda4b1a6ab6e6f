"""The synthetic architectures: tiny dimensions and config.json / generation_config.json.

Configs carry the keys of the real Hugging Face configs (Qwen/Qwen3-8B, Qwen/Qwen3-30B-A3B,
zai-org/GLM-4.5, Qwen/Qwen2.5-0.5B: legacy ``torch_dtype``, ``rope_theta``,
``rope_scaling: null``) plus the ``dtype`` key transformers 5 writes. Projection dimensions are
multiples of 128 unless ``non_divisible`` is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adaptgate.demo.spec import DemoSpec
from adaptgate.demo.tokenizer import ENDOFTEXT, IM_END, token_ids
from adaptgate.errors import InternalError
from adaptgate.registry import Registry

TRANSFORMERS_VERSION = "5.19.0"  # written into the configs: fixed so the bytes are reproducible
VOCAB_MULTIPLE = 128


@dataclass(frozen=True)
class Dims:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    layers: int
    vocab: int
    experts: int = 0
    top_k: int = 0
    moe_intermediate: int = 0
    shared_experts: int = 0
    first_k_dense: int = 0
    mtp_layers: int = 0


@dataclass(frozen=True)
class ArchDef:
    """An architecture's names and layout switches. ``qk_norm``: attention has q_norm/k_norm
    (Qwen3, GLM-4.5; not Llama, Qwen2). ``attention_bias``: q/k/v_proj have biases (GLM-4.5,
    Qwen2). ``glm``: GLM-4.5's MoE (router bias, shared experts, MTP layer) and generation config.
    ``from_gguf``: dimensions and configs come from a GGUF file (:mod:`adaptgate.demo.gguf`),
    not from :meth:`dims` / :meth:`config`."""

    name: str
    architecture: str
    model_type: str
    default_layers: int
    moe: bool
    glm: bool = False
    qk_norm: bool = True
    attention_bias: bool = False
    from_gguf: bool = False

    def _synthetic_only(self, what: str) -> None:
        if self.from_gguf:
            raise InternalError(f"{self.name} {what} come from its GGUF file, not from ArchDef")

    def dims(self, spec: DemoSpec) -> Dims:
        self._synthetic_only("dimensions")
        layers = spec.num_layers or self.default_layers
        vocab = padded_vocab()
        if spec.non_divisible:
            base = {"hidden": 192, "heads": 4, "kv_heads": 2, "head_dim": 48, "intermediate": 320}
            moe_inter = 96
        else:
            base = {"hidden": 256, "heads": 4, "kv_heads": 2, "head_dim": 64, "intermediate": 512}
            # 256, not 128: a [256, 128] down_proj has a [2, 1] block-scale grid, which the
            # compressed-tensors decompressor mistakes for per-channel scales
            moe_inter = 256
        if not self.moe:
            return Dims(layers=layers, vocab=vocab, **base)
        if self.glm:
            first_dense = 1 if layers > 1 else 0
            return Dims(
                layers=layers, vocab=vocab, experts=8, top_k=2, moe_intermediate=moe_inter,
                shared_experts=1, first_k_dense=first_dense, mtp_layers=1, **base,
            )  # fmt: skip
        return Dims(
            layers=layers, vocab=vocab, experts=8, top_k=2, moe_intermediate=moe_inter, **base
        )

    def is_moe_layer(self, dims: Dims, layer: int) -> bool:
        return self.moe and layer >= dims.first_k_dense

    def config(self, dims: Dims, spec: DemoSpec) -> dict[str, Any]:
        self._synthetic_only("configs")
        return _CONFIGS.get(self.model_type, _qwen3_config)(self, dims, spec)

    def generation_config(self) -> dict[str, Any]:
        self._synthetic_only("configs")
        ids = token_ids()
        if self.glm:
            return {
                "_from_model_config": True,
                "eos_token_id": [ids[ENDOFTEXT], ids[IM_END]],
                "pad_token_id": ids[ENDOFTEXT],
                "transformers_version": TRANSFORMERS_VERSION,
            }
        return {
            "bos_token_id": ids[ENDOFTEXT],
            "do_sample": True,
            "eos_token_id": [ids[IM_END], ids[ENDOFTEXT]],
            "pad_token_id": ids[ENDOFTEXT],
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
            "transformers_version": TRANSFORMERS_VERSION,
        }


def padded_vocab() -> int:
    """The tokenizer's size rounded up to a multiple of 128 (the demo tokenizer already is)."""
    size = token_ids()["vocab_size"]
    return -(-size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def _qwen3_config(arch: ArchDef, d: Dims, spec: DemoSpec) -> dict[str, Any]:
    ids = token_ids()
    cfg: dict[str, Any] = {
        "architectures": [arch.architecture],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids[ENDOFTEXT],
        "dtype": "bfloat16",
        "eos_token_id": ids[IM_END],
        "head_dim": d.head_dim,
        "hidden_act": "silu",
        "hidden_size": d.hidden,
        "initializer_range": 0.02,
        "intermediate_size": d.intermediate,
        "max_position_embeddings": 40960,
        "max_window_layers": d.layers,
        "model_type": arch.model_type,
        "num_attention_heads": d.heads,
        "num_hidden_layers": d.layers,
        "num_key_value_heads": d.kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": spec.tie_embeddings,
        "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": d.vocab,
    }
    if arch.moe:
        cfg.update(
            {
                "decoder_sparse_step": 1,
                "mlp_only_layers": [],
                "moe_intermediate_size": d.moe_intermediate,
                "norm_topk_prob": True,
                "num_experts": d.experts,
                "num_experts_per_tok": d.top_k,
                "output_router_logits": False,
                "router_aux_loss_coef": 0.001,
            }
        )
    return dict(sorted(cfg.items()))


def _qwen2_config(arch: ArchDef, d: Dims, spec: DemoSpec) -> dict[str, Any]:
    # Qwen/Qwen2.5-0.5B's keys are Qwen3's without attention_bias (Qwen2 always has q/k/v
    # biases) and head_dim (hidden_size / num_attention_heads); the base model ends on
    # <|endoftext|>.
    cfg = _qwen3_config(arch, d, spec)
    del cfg["attention_bias"], cfg["head_dim"]
    cfg.update(eos_token_id=token_ids()[ENDOFTEXT], max_position_embeddings=32768)
    return cfg


def _glm4_moe_config(arch: ArchDef, d: Dims, spec: DemoSpec) -> dict[str, Any]:
    # Key order as in zai-org/GLM-4.5's config.json (written by hand, not sorted).
    ids = token_ids()
    return {
        "architectures": [arch.architecture],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "pad_token_id": ids[ENDOFTEXT],
        "eos_token_id": [ids[ENDOFTEXT], ids[IM_END]],
        "head_dim": d.head_dim,
        "hidden_act": "silu",
        "hidden_size": d.hidden,
        "partial_rotary_factor": 0.5,
        "initializer_range": 0.02,
        "intermediate_size": d.intermediate,
        "max_position_embeddings": 131072,
        "model_type": arch.model_type,
        "moe_intermediate_size": d.moe_intermediate,
        "norm_topk_prob": True,
        "num_attention_heads": d.heads,
        "n_group": 1,
        "topk_group": 1,
        "n_routed_experts": d.experts,
        "n_shared_experts": d.shared_experts,
        "routed_scaling_factor": 2.5,
        "num_experts_per_tok": d.top_k,
        "first_k_dense_replace": d.first_k_dense,
        "num_hidden_layers": d.layers,
        "num_key_value_heads": d.kv_heads,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "num_nextn_predict_layers": d.mtp_layers,
        "tie_word_embeddings": spec.tie_embeddings,
        "torch_dtype": "bfloat16",
        "dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "use_qk_norm": True,
        "vocab_size": d.vocab,
    }


_CONFIGS = {"glm4_moe": _glm4_moe_config, "qwen2": _qwen2_config}  # by model_type; else Qwen3's

ARCH_REGISTRY: Registry[ArchDef] = Registry("architecture")
ARCH_REGISTRY.add("qwen3", ArchDef("qwen3", "Qwen3ForCausalLM", "qwen3", 2, moe=False))
ARCH_REGISTRY.add(
    "qwen3_moe", ArchDef("qwen3_moe", "Qwen3MoeForCausalLM", "qwen3_moe", 2, moe=True)
)
ARCH_REGISTRY.add(
    "glm4_moe",
    ArchDef(
        "glm4_moe", "Glm4MoeForCausalLM", "glm4_moe", 3, moe=True, glm=True, attention_bias=True
    ),
)
ARCH_REGISTRY.add(
    "qwen2",
    ArchDef("qwen2", "Qwen2ForCausalLM", "qwen2", 2, moe=False, qk_norm=False, attention_bias=True),
)

# Not in the registry: the synthetic factory cannot build it. SmolLM2 (``source="smollm2"``) is
# a llama model read from a GGUF; its dimensions and configs come from the file.
LLAMA = ArchDef("llama", "LlamaForCausalLM", "llama", 30, moe=False, qk_norm=False, from_gguf=True)
