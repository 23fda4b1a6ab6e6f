"""Test helpers: tiny real safetensors checkpoints and a stand-in for adaptgate.checkpoint.

The stand-in reads the safetensors header itself (8-byte little-endian length, then JSON), the
way the real checkpoint package does, so inspect is tested on real files without depending on it.
Tensor names and shapes come from the transformers model built on the meta device, written in
the original Hugging Face per-expert layout (transformers 5 fuses experts in memory).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

CODES = {
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.int8: "I8",
    torch.int32: "I32",
    torch.int64: "I64",
}


@dataclass(frozen=True)
class StandInTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class StandInCheckpoint:
    root: Path
    config: dict[str, Any]
    tensors: dict[str, StandInTensor]
    quant_description: dict[str, Any] | None = None
    generation_config: dict[str, Any] | None = None
    weight_files: list[str] = field(default_factory=list)


def read_header(path: Path) -> dict[str, StandInTensor]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header.pop("__metadata__", None)
    return {n: StandInTensor(n, h["dtype"], tuple(h["shape"])) for n, h in header.items()}


def open_stand_in(root: Path) -> StandInCheckpoint:
    config = json.loads((root / "config.json").read_text())
    desc_path = root / "quant_model_description.json"
    desc = json.loads(desc_path.read_text()) if desc_path.exists() else None
    tensors: dict[str, StandInTensor] = {}
    files = sorted(p.name for p in root.glob("*.safetensors"))
    for name in files:
        tensors.update(read_header(root / name))
    return StandInCheckpoint(root, config, tensors, desc, None, files)


def meta_model(config: dict[str, Any]) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        config["model_type"], **{k: v for k, v in config.items() if k != "model_type"}
    )
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg)


def meta_param_count(config: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """(total, by kind) from transformers' own model: parameters plus stored router-bias buffers."""
    model = meta_model(config)
    kinds = {"experts": 0, "embed": 0, "lm_head": 0}
    total = 0
    named = list(model.named_parameters()) + [
        (n, b) for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")
    ]
    for name, p in named:
        total += p.numel()
        if ".experts." in name:
            kinds["experts"] += p.numel()
        elif "embed_tokens" in name:
            kinds["embed"] += p.numel()
        elif name.startswith("lm_head"):
            kinds["lm_head"] += p.numel()
    return total, kinds


def hf_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Checkpoint tensor names and shapes in the Hugging Face per-expert layout."""
    model = meta_model(config)
    out: dict[str, tuple[int, ...]] = {}
    named = list(model.named_parameters()) + [
        (n, b) for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")
    ]
    for name, p in named:
        shape = tuple(p.shape)
        if name.endswith("experts.gate_up_proj"):
            prefix, (e, two_i, h) = name[: -len("gate_up_proj")], shape
            for j in range(e):
                out[f"{prefix}{j}.gate_proj.weight"] = (two_i // 2, h)
                out[f"{prefix}{j}.up_proj.weight"] = (two_i // 2, h)
        elif name.endswith("experts.down_proj"):
            prefix, (e, h, i) = name[: -len("down_proj")], shape
            for j in range(e):
                out[f"{prefix}{j}.down_proj.weight"] = (h, i)
        else:
            out[name] = shape
    if config.get("tie_word_embeddings"):
        out.pop("lm_head.weight", None)
    return out


def add_mtp(shapes: dict[str, tuple[int, ...]], config: dict[str, Any], store_embed: bool) -> int:
    """Append one MTP layer (index = num_hidden_layers) and return its hand-counted size."""
    layers, h, v = config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]
    last = f"model.layers.{layers - 1}."
    new = f"model.layers.{layers}."
    added = {new + k[len(last) :]: s for k, s in shapes.items() if k.startswith(last)}
    added[new + "enorm.weight"] = (h,)
    added[new + "hnorm.weight"] = (h,)
    added[new + "eh_proj.weight"] = (h, 2 * h)
    added[new + "shared_head.norm.weight"] = (h,)
    if store_embed:
        added[new + "embed_tokens.weight"] = (v, h)
        added[new + "shared_head.head.weight"] = (v, h)
    shapes.update(added)
    layer = sum(_prod(s) for k, s in shapes.items() if k.startswith(last))
    return layer + 2 * h * h + 3 * h + (2 * v * h if store_embed else 0)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def write_checkpoint(
    root: Path,
    config: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    description: dict[str, Any] | None = None,
) -> StandInCheckpoint:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    if description is not None:
        (root / "quant_model_description.json").write_text(json.dumps(description))
    save_file(tensors, str(root / "model.safetensors"))
    return open_stand_in(root)


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=gen).to(torch.bfloat16) for n, s in shapes.items()}


def fp8_block(
    tensors: dict[str, torch.Tensor], block: tuple[int, int], skip: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """FP8 block quantization of every 2-D linear weight, with ceil-division scale grids."""
    out: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if t.ndim != 2 or not name.endswith("proj.weight") or any(s in name for s in skip):
            out[name] = t
            continue
        rows, cols = -(-t.shape[0] // block[0]), -(-t.shape[1] // block[1])
        scale = torch.rand(rows, cols) * 0.01 + 0.001
        expanded = scale.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1)
        q = (t.float() / expanded[: t.shape[0], : t.shape[1]]).clamp(-448, 448)
        out[name] = q.to(torch.float8_e4m3fn)
        out[name.replace(".weight", ".weight_scale_inv")] = scale.to(torch.bfloat16)
    return out


TINY_QWEN3 = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 128,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
TINY_QWEN3_MOE = {
    **TINY_QWEN3,
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "moe_intermediate_size": 40,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [0],
    "num_hidden_layers": 3,
}
TINY_GLM4_MOE = {
    **TINY_QWEN3,
    "architectures": ["Glm4MoeForCausalLM"],
    "model_type": "glm4_moe",
    "moe_intermediate_size": 40,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "num_hidden_layers": 3,
    "partial_rotary_factor": 0.5,
    "use_qk_norm": True,
    "attention_bias": True,
    "num_nextn_predict_layers": 1,
    "n_group": 1,
    "topk_group": 1,
}
TINY_DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 64,
    "intermediate_size": 96,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 128,
    "n_routed_experts": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "q_lora_rank": 32,
    "kv_lora_rank": 16,
    "qk_nope_head_dim": 8,
    "qk_rope_head_dim": 4,
    "v_head_dim": 8,
    "n_group": 1,
    "topk_group": 1,
    "num_nextn_predict_layers": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
