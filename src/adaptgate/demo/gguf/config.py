"""config.json and generation_config.json for a llama GGUF, with the keys of the real Hugging
Face checkpoint (HuggingFaceTB/SmolLM2-135M-Instruct): legacy ``torch_dtype`` plus transformers 5's
``dtype``, ``rope_theta`` at the top level, sorted keys."""

from __future__ import annotations

import struct
from typing import Any

from adaptgate.demo.archs import TRANSFORMERS_VERSION
from adaptgate.demo.gguf.metadata import GgufVocab, LlamaHParams


def float32_repr(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (``9.999999747378752e-06`` ->
    ``1e-05``), as a Python float: what the model's author wrote before llama.cpp stored it."""
    bits = struct.pack("<f", value)
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == bits:
            return short
    return value


def hf_config(hp: LlamaHParams, vocab: GgufVocab, *, tie_embeddings: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": vocab.bos_id,
        "dtype": "bfloat16",
        "eos_token_id": vocab.eos_id,
        "head_dim": hp.head_dim,
        "hidden_act": "silu",
        "hidden_size": hp.hidden,
        "initializer_range": hp.hidden**-0.5,  # SmolLM2's value, 1/sqrt(hidden)
        "intermediate_size": hp.intermediate,
        "max_position_embeddings": hp.context_length,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": hp.heads,
        "num_hidden_layers": hp.layers,
        "num_key_value_heads": hp.kv_heads,
        "pad_token_id": vocab.pad_id,
        "pretraining_tp": 1,
        "rms_norm_eps": float32_repr(hp.rms_norm_eps),
        "rope_scaling": None,
        "rope_theta": float32_repr(hp.rope_theta),
        "tie_word_embeddings": tie_embeddings,
        "torch_dtype": "bfloat16",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": hp.vocab_size,
    }
    return dict(sorted(cfg.items()))


def generation_config(vocab: GgufVocab) -> dict[str, Any]:
    return {
        "_from_model_config": True,
        "bos_token_id": vocab.bos_id,
        "eos_token_id": vocab.eos_id,
        "pad_token_id": vocab.pad_id,
        "transformers_version": TRANSFORMERS_VERSION,
    }
