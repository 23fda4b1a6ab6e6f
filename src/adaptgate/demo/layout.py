"""Tensor names and shapes exactly as the real Hugging Face checkpoints store them.

Verified against the model.safetensors.index.json names of Qwen/Qwen3-8B (dense),
Qwen/Qwen3-30B-A3B (``mlp.gate.weight`` router, ``mlp.experts.{e}.{gate,up,down}_proj.weight``)
and zai-org/GLM-4.5 (``mlp.shared_experts.*``, ``mlp.gate.e_score_correction_bias`` in float32,
q/k/v biases, and the MTP layer at ``model.layers.{num_hidden_layers}`` with ``eh_proj``,
``enorm``, ``hnorm``, ``shared_head.norm``, ``shared_head.head`` and its own copy of
``embed_tokens``, which GLM-4.5 stores and GLM-4.6 dropped -- vLLM PR #27597). Llama
(HuggingFaceTB/SmolLM2-135M-Instruct) is Qwen3's dense layout without ``q_norm``/``k_norm``;
Qwen2 (Qwen/Qwen2.5-0.5B) is Llama's with q/k/v_proj biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adaptgate.demo.archs import ArchDef, Dims

Kind = Literal["embed", "norm", "linear", "bias", "router", "router_bias", "head", "mtp_proj"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    kind: Kind
    dtype: Literal["bfloat16", "float32"] = "bfloat16"


@dataclass(frozen=True)
class LinearSpec:
    """A Linear module of the checkpoint. ``quantizable`` is False for lm_head, routers and MTP
    projections; ``group`` names the fused module (qkv, gate_up, experts) whose parts must share
    one quantization type."""

    module: str
    out_features: int
    in_features: int
    bias: bool
    quantizable: bool
    group: str


@dataclass(frozen=True)
class Layout:
    tensors: tuple[TensorSpec, ...]
    linears: tuple[LinearSpec, ...]

    def linear(self, module: str) -> LinearSpec:
        for lin in self.linears:
            if lin.module == module:
                return lin
        raise KeyError(module)


class _Builder:
    def __init__(self) -> None:
        self.tensors: list[TensorSpec] = []
        self.linears: list[LinearSpec] = []

    def add(self, name: str, shape: tuple[int, ...], kind: Kind, dtype: str = "bfloat16") -> None:
        assert dtype in ("bfloat16", "float32")
        self.tensors.append(TensorSpec(name, shape, kind, dtype))  # type: ignore[arg-type]

    def linear(
        self,
        module: str,
        out_f: int,
        in_f: int,
        *,
        group: str,
        bias: bool = False,
        quantizable: bool = True,
        kind: Kind = "linear",
    ) -> None:
        self.add(f"{module}.weight", (out_f, in_f), kind)
        if bias:
            self.add(f"{module}.bias", (out_f,), "bias")
        self.linears.append(LinearSpec(module, out_f, in_f, bias, quantizable, group))


def _attention(b: _Builder, prefix: str, d: Dims, *, bias: bool, qk_norm: bool) -> None:
    attn = f"{prefix}.self_attn"
    q_out, kv_out = d.heads * d.head_dim, d.kv_heads * d.head_dim
    qkv = f"{attn}.qkv_proj"
    b.linear(f"{attn}.q_proj", q_out, d.hidden, group=qkv, bias=bias)
    b.linear(f"{attn}.k_proj", kv_out, d.hidden, group=qkv, bias=bias)
    b.linear(f"{attn}.v_proj", kv_out, d.hidden, group=qkv, bias=bias)
    b.linear(f"{attn}.o_proj", d.hidden, q_out, group=f"{attn}.o_proj")
    if qk_norm:
        b.add(f"{attn}.q_norm.weight", (d.head_dim,), "norm")
        b.add(f"{attn}.k_norm.weight", (d.head_dim,), "norm")


def _dense_mlp(b: _Builder, mlp: str, hidden: int, inter: int) -> None:
    b.linear(f"{mlp}.gate_proj", inter, hidden, group=f"{mlp}.gate_up_proj")
    b.linear(f"{mlp}.up_proj", inter, hidden, group=f"{mlp}.gate_up_proj")
    b.linear(f"{mlp}.down_proj", hidden, inter, group=f"{mlp}.down_proj")


def _moe(b: _Builder, mlp: str, d: Dims, *, glm: bool) -> None:
    b.linear(f"{mlp}.gate", d.experts, d.hidden, group=f"{mlp}.gate", quantizable=False,
             kind="router")  # fmt: skip
    if glm:
        b.add(f"{mlp}.gate.e_score_correction_bias", (d.experts,), "router_bias", "float32")
    for e in range(d.experts):
        _dense_mlp_expert(b, f"{mlp}.experts.{e}", d, group=f"{mlp}.experts")
    if glm and d.shared_experts:
        _dense_mlp(b, f"{mlp}.shared_experts", d.hidden, d.moe_intermediate * d.shared_experts)


def _dense_mlp_expert(b: _Builder, prefix: str, d: Dims, *, group: str) -> None:
    b.linear(f"{prefix}.gate_proj", d.moe_intermediate, d.hidden, group=group)
    b.linear(f"{prefix}.up_proj", d.moe_intermediate, d.hidden, group=group)
    b.linear(f"{prefix}.down_proj", d.hidden, d.moe_intermediate, group=group)


def _decoder_layer(b: _Builder, arch: ArchDef, d: Dims, layer: int) -> None:
    prefix = f"model.layers.{layer}"
    b.add(f"{prefix}.input_layernorm.weight", (d.hidden,), "norm")
    _attention(b, prefix, d, bias=arch.attention_bias, qk_norm=arch.qk_norm)
    if arch.is_moe_layer(d, layer):
        _moe(b, f"{prefix}.mlp", d, glm=arch.glm)
    else:
        _dense_mlp(b, f"{prefix}.mlp", d.hidden, d.intermediate)
    b.add(f"{prefix}.post_attention_layernorm.weight", (d.hidden,), "norm")


def build_layout(arch: ArchDef, d: Dims, *, tie_embeddings: bool) -> Layout:
    b = _Builder()
    b.add("model.embed_tokens.weight", (d.vocab, d.hidden), "embed")
    for layer in range(d.layers):
        _decoder_layer(b, arch, d, layer)
    b.add("model.norm.weight", (d.hidden,), "norm")
    if not tie_embeddings:
        b.linear("lm_head", d.vocab, d.hidden, group="lm_head", quantizable=False, kind="head")
    for layer in range(d.layers, d.layers + d.mtp_layers):
        prefix = f"model.layers.{layer}"
        b.add(f"{prefix}.embed_tokens.weight", (d.vocab, d.hidden), "embed")
        b.add(f"{prefix}.enorm.weight", (d.hidden,), "norm")
        b.add(f"{prefix}.hnorm.weight", (d.hidden,), "norm")
        b.linear(f"{prefix}.eh_proj", d.hidden, 2 * d.hidden, group=f"{prefix}.eh_proj",
                 quantizable=False, kind="mtp_proj")  # fmt: skip
        _decoder_layer(b, arch, d, layer)
        b.add(f"{prefix}.shared_head.norm.weight", (d.hidden,), "norm")
        b.linear(f"{prefix}.shared_head.head", d.vocab, d.hidden,
                 group=f"{prefix}.shared_head.head", quantizable=False, kind="head")  # fmt: skip
    return Layout(tuple(b.tensors), tuple(b.linears))
