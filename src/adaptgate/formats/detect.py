"""Which quantization scheme a checkpoint uses: read from its config, cross-checked against tensors.

``detect_quantization(config, tensors, quant_description)`` names the scheme (fine-grained FP8
block, compressed-tensors groups, Ascend msModelSlim, bitsandbytes/AWQ/GPTQ, none) from the config
or ``quant_model_description.json``, then checks the tensor headers against it: weight dtypes,
presence and shape of scale tensors (block grid = ceil(out/bn) x ceil(in/bk)), names the
description lists that do not exist. Every disagreement is listed; nothing is raised.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from adaptgate.formats.dequantize import ceil_div
from adaptgate.formats.names import OFFSET, SCALE, SCALE_INV

# Tensor-name suffixes that hold quantization metadata, not model parameters.
QUANT_META_SUFFIXES = (
    "weight_scale_inv", "weight_scale", "weight_offset", "weight_zero_point", "weight_g_idx",
    "weight_shape", "weight_global_scale", "input_scale", "input_offset", "input_zero_point",
    "input_global_scale", "output_scale", "deq_scale", "quant_bias", "k_scale", "v_scale",
    "kv_cache_scale", "kv_cache_offset", "qzeros", "scales", "g_idx", "SCB", "absmax", "quant_map",
    "nested_absmax", "nested_quant_map", "smooth_factor",
)  # fmt: skip
_META_RE = re.compile(r"(?:^|\.)(" + "|".join(QUANT_META_SUFFIXES) + r")$|\.quant_state\.")
_QUANT_WEIGHT_DTYPES = {"F8_E4M3", "F8_E5M2", "I8", "U8", "I32", "F4", "F8_E4M3FNUZ"}

Method = Literal[
    "none", "fp8", "compressed-tensors", "ascend", "bitsandbytes", "awq", "gptq", "other"
]


class TensorLike(Protocol):
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


def is_quant_metadata(name: str) -> bool:
    """True for scales, offsets, zero points and KV-cache scales: bytes, not parameters."""
    return bool(_META_RE.search(name))


class QuantGroup(BaseModel):
    """One compressed-tensors config group (or the single FP8/Ascend scheme as one group)."""

    name: str
    targets: list[str] = Field(default_factory=list)
    weight_type: str | None = None  # "float" | "int"
    weight_bits: int | None = None
    weight_strategy: str | None = None  # tensor | channel | block | group
    block_structure: list[int] | None = None
    group_size: int | None = None
    symmetric: bool | None = None
    activation_type: str | None = None
    activation_bits: int | None = None
    activation_strategy: str | None = None  # tensor | token | group
    activation_dynamic: bool | None = None


class Disagreement(BaseModel):
    kind: str  # config_vs_tensors | missing_scale | orphan_scale | grid_shape | description | ...
    message: str
    examples: list[str] = Field(default_factory=list)
    count: int = 1


class QuantScheme(BaseModel):
    """The detected scheme; ``disagreements`` lists every config/tensor mismatch found."""

    method: Method
    label: str = Field(description="short name: BF16, FP8_BLOCK, FP8_DYNAMIC, W8A8_DYNAMIC, ...")
    source: str = Field(description="config | quant_model_description | tensors | none")
    format: str | None = None
    weight_dtype: str | None = Field(None, description="dominant dtype of quantized weights")
    weight_bits: int | None = None
    block_size: list[int] | None = None
    scale_fmt: str | None = None
    activation_scheme: str | None = None
    groups: list[QuantGroup] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    kv_cache_scheme: dict[str, Any] | None = None
    kv_cache_type: str | None = None
    model_quant_type: str | None = None
    quantized_weights: int = 0
    scale_tensors: int = 0
    dtype_counts: dict[str, int] = Field(default_factory=dict)
    disagreements: list[Disagreement] = Field(default_factory=list)

    @property
    def is_quantized(self) -> bool:
        return self.method != "none"

    @property
    def is_fp8(self) -> bool:
        return self.weight_dtype in {"F8_E4M3", "F8_E5M2"} or self.label.startswith("FP8")


def matches(name: str, patterns: list[str]) -> bool:
    """compressed-tensors / vLLM ignore matching: ``re:`` regex or module-name containment."""
    module = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
    for pat in patterns:
        if pat.startswith("re:"):
            if re.match(pat[3:], module) or re.match(pat[3:], name):
                return True
        elif module == pat or module.endswith("." + pat) or module.startswith(pat + "."):
            return True
    return False


def _group(name: str, raw: dict[str, Any]) -> QuantGroup:
    w = raw.get("weights") or {}
    a = raw.get("input_activations") or {}
    return QuantGroup(
        name=name,
        targets=list(raw.get("targets") or []),
        weight_type=w.get("type"),
        weight_bits=w.get("num_bits"),
        weight_strategy=w.get("strategy"),
        block_structure=w.get("block_structure"),
        group_size=w.get("group_size"),
        symmetric=w.get("symmetric"),
        activation_type=a.get("type") if a else None,
        activation_bits=a.get("num_bits") if a else None,
        activation_strategy=a.get("strategy") if a else None,
        activation_dynamic=a.get("dynamic") if a else None,
    )


def _ct_label(g: QuantGroup) -> str:
    if g.weight_type == "float" and g.weight_bits == 8:
        if g.weight_strategy == "block":
            return "FP8_BLOCK"
        if g.weight_strategy == "channel" and g.activation_dynamic:
            return "FP8_DYNAMIC"
        return "FP8" if g.activation_type else "FP8_W8A16"
    if g.weight_type == "int" and g.weight_bits == 8:
        if g.activation_type is None:
            return "W8A16"
        return "W8A8_DYNAMIC" if g.activation_dynamic else "W8A8"
    if g.weight_bits == 4:
        return "W4A16" if g.activation_type is None else f"W4A{g.activation_bits}"
    return f"W{g.weight_bits}"


def _ct_dtype(g: QuantGroup | None) -> str | None:
    if g is None or g.weight_bits != 8:
        return "I32" if g and g.weight_bits == 4 else None
    return "F8_E4M3" if g.weight_type == "float" else "I8"


def _from_config(config: dict[str, Any], desc: dict[str, Any] | None) -> QuantScheme:
    qc = config.get("quantization_config") or (config.get("text_config") or {}).get(
        "quantization_config"
    )
    if desc is not None:
        qtype = str(desc.get("model_quant_type") or "W8A8")
        return QuantScheme(
            method="ascend",
            label=qtype,
            source="quant_model_description",
            weight_bits=4 if qtype.startswith("W4") else 8,
            model_quant_type=qtype,
            weight_dtype="I8" if qtype.startswith("W8") else None,
            kv_cache_type=desc.get("kv_cache_type"),
            activation_scheme="dynamic" if "DYNAMIC" in qtype else "static",
        )
    if not isinstance(qc, dict):
        return QuantScheme(method="none", label="unquantized", source="none")
    method = str(qc.get("quant_method") or "other").lower()
    if method == "fp8":
        block = qc.get("weight_block_size")
        return QuantScheme(
            method="fp8",
            label="FP8_BLOCK" if block else "FP8",
            source="config",
            weight_dtype="F8_E5M2" if qc.get("fmt") == "e5m2" else "F8_E4M3",
            weight_bits=8,
            block_size=list(block) if block else None,
            scale_fmt=qc.get("scale_fmt"),
            activation_scheme=qc.get("activation_scheme"),
            ignore=ignore_list(qc),
        )
    if method == "compressed-tensors":
        groups = [_group(k, v) for k, v in (qc.get("config_groups") or {}).items()]
        labels = sorted({_ct_label(g) for g in groups}) or ["compressed-tensors"]
        first = groups[0] if groups else None
        act = None
        if first and first.activation_type:
            act = "dynamic" if first.activation_dynamic else "static"
        return QuantScheme(
            method="compressed-tensors",
            label="+".join(labels),
            source="config",
            format=qc.get("format"),
            weight_dtype=_ct_dtype(first),
            weight_bits=first.weight_bits if first else None,
            block_size=first.block_structure if first else None,
            activation_scheme=act,
            groups=groups,
            ignore=ignore_list(qc),
            kv_cache_scheme=qc.get("kv_cache_scheme"),
        )
    if method in {"bitsandbytes", "awq", "gptq"}:
        bits = qc.get("bits") or qc.get("w_bit") or (4 if qc.get("load_in_4bit") else 8)
        return QuantScheme(
            method=method,
            label=f"{method.upper()}-W{bits}",
            source="config",
            weight_bits=int(bits),
            ignore=ignore_list(qc),
        )
    return QuantScheme(method="other", label=method, source="config")


def ignore_list(qc: dict[str, Any]) -> list[str]:
    """Every module the config keeps unquantized: ``modules_to_not_convert`` and
    ``ignored_layers`` (both read by vLLM's fp8 config) and compressed-tensors' ``ignore``
    (names or ``re:`` patterns), de-duplicated in order."""
    names: list[str] = []
    for key in ("modules_to_not_convert", "ignored_layers", "ignore"):
        value = qc.get(key)
        if isinstance(value, list):
            names += [str(v) for v in value]
    return list(dict.fromkeys(names))


def detect_quantization(
    config: dict[str, Any],
    tensors: Mapping[str, TensorLike] | None,
    quant_description: dict[str, Any] | None,
) -> QuantScheme:
    """The scheme the config (or msModelSlim description) declares, checked against the tensors."""
    scheme = _from_config(config, quant_description)
    if tensors is None:
        return scheme
    weights = {
        n: t
        for n, t in tensors.items()
        if n.endswith((".weight", ".weight_packed")) and len(t.shape) >= 2
    }
    counts = Counter(t.dtype for t in weights.values())
    quantized = [n for n, t in weights.items() if t.dtype in _QUANT_WEIGHT_DTYPES]
    qcounts = Counter(weights[n].dtype for n in quantized)
    scheme.dtype_counts = dict(counts)
    scheme.quantized_weights = len(quantized)
    scheme.scale_tensors = sum(1 for n in tensors if is_quant_metadata(n))
    scheme.weight_dtype = qcounts.most_common(1)[0][0] if qcounts else None
    if not scheme.weight_dtype and counts:
        scheme.weight_dtype = counts.most_common(1)[0][0]
    scheme.disagreements = _Checker(scheme, tensors, quantized, quant_description).run()
    if scheme.method == "none" and quantized:
        scheme.source = "tensors"
    return scheme


_WEIGHT_META = (SCALE_INV, SCALE, OFFSET, "deq_scale", "quant_bias")
_NOT_QUANTIZED_BY_DESIGN = re.compile(
    r"(embed_tokens|lm_head|\.gate\.weight$|norm|shared_expert_gate)"
)


class _Checker:
    """Collects every disagreement between the declared scheme and the tensor headers."""

    def __init__(
        self,
        scheme: QuantScheme,
        tensors: Mapping[str, TensorLike],
        quantized: list[str],
        desc: dict[str, Any] | None,
    ) -> None:
        self.s, self.t, self.q, self.desc = scheme, tensors, quantized, desc
        self.found: dict[tuple[str, str], list[str]] = {}

    def add(self, kind: str, message: str, name: str) -> None:
        self.found.setdefault((kind, message), []).append(name)

    def run(self) -> list[Disagreement]:
        s = self.s
        if s.method in {"fp8", "compressed-tensors"} and not self.q:
            dtypes = ", ".join(sorted(s.dtype_counts)) or "none"
            self.add(
                "config_vs_tensors",
                f"config says {s.label} but no weight is quantized (weight dtypes: {dtypes})",
                "(all weights)",
            )
        if s.method == "none":
            for n in self.q:
                self.add(
                    "config_vs_tensors",
                    f"config declares no quantization but weights are {self.t[n].dtype}",
                    n,
                )
        elif s.method == "ascend":
            self._ascend()
        elif s.method in {"fp8", "compressed-tensors"}:
            for n in self.q:
                self._linear(n)
            if self.q:
                self._unlisted_bf16()
        self._orphans()
        return [
            Disagreement(kind=k, message=m, examples=names[:3], count=len(names))
            for (k, m), names in self.found.items()
        ]

    def _linear(self, name: str) -> None:
        s, w = self.s, self.t[name]
        prefix = name.rsplit(".", 1)[0]
        if matches(name, s.ignore):
            self.add(
                "ignored_but_quantized", f"listed as not quantized but stored as {w.dtype}", name
            )
            return
        group = self._group_for(prefix)
        packed = name.endswith("weight_packed")
        bits = (group.weight_bits if group else None) or s.weight_bits or 8
        out_f, in_f = w.shape[0], w.shape[-1] * (32 // bits if packed else 1)
        if group and not packed:
            want = "F8_E4M3" if group.weight_type == "float" else "I8"
            if group.weight_bits == 8 and w.dtype != want:
                self.add(
                    "config_vs_tensors",
                    f"group {group.name} declares {group.weight_type}8 "
                    f"weights but the tensor is {w.dtype}",
                    name,
                )
        strategy = group.weight_strategy if group else ("block" if s.block_size else "tensor")
        block = (group.block_structure if group else None) or s.block_size
        scale_name = (
            f"{prefix}.{SCALE_INV}" if s.method == "fp8" and s.block_size else (f"{prefix}.{SCALE}")
        )
        scale = self.t.get(scale_name)
        if scale is None:
            self.add(
                "missing_scale", f"quantized weight without {scale_name.rsplit('.', 1)[1]}", name
            )
            return
        want_shape: tuple[int, ...] | None = None
        if strategy == "block" and block:
            want_shape = (ceil_div(out_f, block[0]), ceil_div(in_f, block[1]))
        elif strategy == "channel":
            want_shape = (out_f, 1)
        elif strategy == "group" and group and group.group_size:
            want_shape = (out_f, ceil_div(in_f, group.group_size))
        numel = 1
        for d in scale.shape:
            numel *= d
        if strategy == "tensor" and numel != 1:
            self.add(
                "grid_shape", f"per-tensor scheme expects 1 scale, found shape {scale.shape}", name
            )
        elif want_shape and tuple(scale.shape) not in {want_shape, want_shape[:1]}:
            self.add(
                "grid_shape",
                f"scale grid {tuple(scale.shape)} != expected {want_shape} "
                f"for weight {tuple(w.shape)}",
                name,
            )
        static = (group.activation_dynamic is False) if group else s.activation_scheme == "static"
        if static and f"{prefix}.input_scale" not in self.t:
            self.add("missing_scale", "static activation scheme but no input_scale", name)

    def _group_for(self, prefix: str) -> QuantGroup | None:
        for g in self.s.groups:
            for target in g.targets:
                if not target.startswith("re:") or re.match(target[3:], prefix):
                    return g
        return self.s.groups[0] if self.s.groups else None

    def _unlisted_bf16(self) -> None:
        for n, w in self.t.items():
            if not n.endswith("_proj.weight") or n in self.q or len(w.shape) != 2:
                continue
            if _NOT_QUANTIZED_BY_DESIGN.search(n) or matches(n, self.s.ignore):
                continue
            self.add(
                "unlisted_unquantized",
                f"{w.dtype} linear is not in the ignore list (vLLM will expect it quantized)",
                n,
            )
        if self.s.kv_cache_scheme and not any(n.endswith(("k_scale", "v_scale")) for n in self.t):
            self.add(
                "missing_scale",
                "kv_cache_scheme is set but no k_scale/v_scale tensor exists",
                "(self_attn)",
            )

    def _ascend(self) -> None:
        desc = self.desc or {}
        entries = {k: v for k, v in desc.items() if isinstance(v, str) and "." in k}
        for name in entries:
            if name not in self.t:
                self.add("description", "description names a tensor that does not exist", name)
        for name in self.t:
            if name not in entries:
                self.add("description", "tensor is missing from quant_model_description", name)
        for name, qtype in entries.items():
            w = self.t.get(name)
            if w is None or not name.endswith(".weight"):
                continue
            prefix = name[: -len(".weight")]
            if qtype == "FLOAT":
                if w.dtype in _QUANT_WEIGHT_DTYPES:
                    self.add("description", f"described FLOAT but stored as {w.dtype}", name)
                continue
            if qtype.startswith("W8") and w.dtype != "I8":
                self.add("config_vs_tensors", f"described {qtype} but stored as {w.dtype}", name)
            needed = [SCALE, OFFSET]
            if qtype == "W8A8":
                needed += ["input_scale", "input_offset", "deq_scale", "quant_bias"]
            for part in needed:
                if f"{prefix}.{part}" not in self.t:
                    self.add("missing_scale", f"{qtype} weight without {part}", name)
            scale = self.t.get(f"{prefix}.{SCALE}")
            if scale is not None and qtype.endswith("DYNAMIC") and scale.shape[0] != w.shape[0]:
                self.add(
                    "grid_shape",
                    f"per-channel scale {tuple(scale.shape)} does not match "
                    f"{w.shape[0]} output channels",
                    name,
                )
        if self.s.kv_cache_type == "C8" and not any(n.endswith("kv_cache_scale") for n in self.t):
            self.add("missing_scale", "kv_cache_type C8 but no kv_cache_scale tensor", "(k_proj)")

    def _orphans(self) -> None:
        for n in self.t:
            part = n.rsplit(".", 1)[-1]
            if part not in _WEIGHT_META and part != "input_scale":
                continue
            prefix = n.rsplit(".", 1)[0]
            w = self.t.get(f"{prefix}.weight") or self.t.get(f"{prefix}.weight_packed")
            if w is None:
                self.add("orphan_scale", f"{part} without a weight", n)
            elif w.dtype not in _QUANT_WEIGHT_DTYPES and part in _WEIGHT_META[:2]:
                self.add("orphan_scale", f"{part} beside an unquantized {w.dtype} weight", n)
