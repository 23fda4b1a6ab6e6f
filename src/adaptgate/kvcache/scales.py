"""K/V scales per format: from the checkpoint, unit (1.0), or calibrated; read and written in
the tensor names vLLM and vllm-ascend load.

Where the engines read them:

- vLLM FP8: one float per attention layer for K and one for V.
  ``maybe_remap_kv_scale_name`` accepts ``<attn>.k_scale``/``v_scale`` (compressed-tensors,
  llm-compressor), ``<attn>.k_proj.k_scale``/``v_proj.v_scale`` (ModelOpt),
  ``<attn>.k_proj.output_scale``/``v_proj.output_scale`` (FP8 checkpoints) and the deprecated
  single ``<attn>.kv_scale`` (duplicated to both). ``BaseKVCacheMethod`` keeps 1.0 when none
  is loaded (with the warning "Using KV cache scaling factor 1.0 for fp8_e4m3"), and vLLM
  refuses ``fp8_e5m2`` whenever the checkpoint's quantization carries KV scales -- e5m2 always
  runs with 1.0.
- vllm-ascend C8: ``<attn>.k_proj.kv_cache_scale``/``kv_cache_offset`` and the same under
  ``v_proj``, one value per ``kv_heads * head_dim`` channel, enabled by
  ``"kv_cache_type": "C8"`` in quant_model_description.json (absent: no int8 cache at all;
  the parameters default to 1.0 / 0.0).

Calibration follows the producers: FP8 ``scale = amax / 448`` per tensor (the static
per-tensor FP8 scale of llm-compressor / compressed-tensors), C8 msModelSlim's symmetric
``int8_per_channel_sym``: ``scale = max(amax_c, eps) / 127``, offset 0 -- symmetric because
vllm-ascend's decode kernel does not apply the offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from adaptgate.kvcache.formats import KVFormat
from adaptgate.messages import Said, said

if TYPE_CHECKING:
    import torch

    from adaptgate.checkpoint import Checkpoint

ScaleMode = Literal["checkpoint", "unit", "calibrated"]
SCALE_MODES: tuple[ScaleMode, ...] = ("checkpoint", "unit", "calibrated")
EPS32 = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps, msModelSlim's floor

VLLM_FILE = "kv_scales.safetensors"
VLLM_SCHEME_FILE = "kv_cache_scheme.json"
C8_FILE = "kv_cache_c8.safetensors"
C8_DESCRIPTION_FILE = "quant_model_description.c8.json"
# compressed-tensors' static per-tensor FP8 KV-cache scheme (what llm-compressor writes)
KV_CACHE_SCHEME = {
    "num_bits": 8,
    "type": "float",
    "strategy": "tensor",
    "dynamic": False,
    "symmetric": True,
}


@dataclass
class LayerScales:
    """One attention layer: FP8 scalars (0-d float32) or C8 ``[kv_heads * head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor
    k_offset: torch.Tensor | None = None
    v_offset: torch.Tensor | None = None


@dataclass
class ScaleSet:
    format: KVFormat
    source: ScaleMode
    layers: list[LayerScales]
    notes: list[Said] = field(default_factory=list)


@dataclass
class Calibration:
    """``|x|`` maxima per layer and channel over the calibration tokens (float32 ``[C]``)."""

    k_amax: list[torch.Tensor]
    v_amax: list[torch.Tensor]
    tokens: int = 0


def _scalar(value: float) -> torch.Tensor:
    import torch

    return torch.tensor(float(value), dtype=torch.float32)


def unit_scales(fmt: KVFormat, num_layers: int, channels: int) -> ScaleSet:
    import torch

    if fmt.is_fp8:
        layers = [LayerScales(_scalar(1.0), _scalar(1.0)) for _ in range(num_layers)]
        note = said("kvcache.unit_fp8")
    else:
        ones, zeros = torch.ones(channels), torch.zeros(channels)
        layers = [LayerScales(ones, ones, zeros, zeros) for _ in range(num_layers)]
        note = said("kvcache.unit_c8")
    return ScaleSet(fmt, "unit", layers, [note])


def calibrated_scales(fmt: KVFormat, cal: Calibration) -> ScaleSet:
    import torch

    if fmt.name == "fp8_e5m2":
        ss = unit_scales(fmt, len(cal.k_amax), int(cal.k_amax[0].numel()))
        ss.source = "calibrated"
        ss.notes = [said("kvcache.e5m2_not_calibrated")]
        return ss
    layers = []
    for k, v in zip(cal.k_amax, cal.v_amax, strict=True):
        if fmt.is_fp8:
            layers.append(
                LayerScales(
                    _scalar(max(float(k.max()), EPS32) / fmt.limit),
                    _scalar(max(float(v.max()), EPS32) / fmt.limit),
                )
            )
        else:
            zeros = torch.zeros_like(k)
            layers.append(
                LayerScales(
                    k.clamp_min(EPS32) / fmt.limit, v.clamp_min(EPS32) / fmt.limit, zeros, zeros
                )
            )
    rule = "kvcache.calibrated_fp8" if fmt.is_fp8 else "kvcache.calibrated_c8"
    return ScaleSet(fmt, "calibrated", layers, [said(rule, tokens=cal.tokens)])


def attention_prefixes(ckpt: Checkpoint, num_layers: int) -> list[str]:
    """``<attn>`` per decoder layer, from the checkpoint's k_proj tensor names
    (``model.layers.3.self_attn.k_proj.weight`` -> ``model.layers.3.self_attn``)."""
    found: dict[int, str] = {}
    pattern = re.compile(r"^(.*\.(\d+)\.[^.]*attn[^.]*)\.k_proj\.weight$")
    for name in ckpt.tensors:
        m = pattern.match(name)
        if m and int(m.group(2)) < num_layers:
            found.setdefault(int(m.group(2)), m.group(1))
    return [found.get(i, f"model.layers.{i}.self_attn") for i in range(num_layers)]


def _read_scalar(ckpt: Checkpoint, names: list[str]) -> float | None:
    for name in names:
        if name in ckpt.tensors:
            return float(ckpt.read_tensor(name).to_dense().float().max())
    return None


def checkpoint_scales(
    fmt: KVFormat, ckpt: Checkpoint, prefixes: list[str], channels: int
) -> ScaleSet:
    """The scales the engine would load from this checkpoint (defaults where none)."""
    import torch

    unit = unit_scales(fmt, len(prefixes), channels)
    if fmt.name == "fp8_e5m2":
        unit.source = "checkpoint"
        unit.notes = [said("kvcache.e5m2_unit")]
        return unit
    layers: list[LayerScales] = []
    missing: list[int] = []
    for i, a in enumerate(prefixes):
        if fmt.is_fp8:
            k = _read_scalar(
                ckpt, [f"{a}.k_scale", f"{a}.k_proj.k_scale", f"{a}.k_proj.output_scale"]
            )
            v = _read_scalar(
                ckpt, [f"{a}.v_scale", f"{a}.v_proj.v_scale", f"{a}.v_proj.output_scale"]
            )
            kv = _read_scalar(ckpt, [f"{a}.kv_scale"])
            if k is None and v is None and kv is not None:
                k = v = kv
            if k is None or v is None or k <= 0 or v <= 0:
                missing.append(i)
                layers.append(unit.layers[i])
            else:
                layers.append(LayerScales(_scalar(k), _scalar(v)))
        else:
            names = [f"{a}.{p}_proj.kv_cache_{w}" for p in "kv" for w in ("scale", "offset")]
            if not all(n in ckpt.tensors for n in names):
                missing.append(i)
                layers.append(unit.layers[i])
                continue
            ks, ko, vs, vo = (ckpt.read_tensor(n).to(torch.float32).reshape(-1) for n in names)
            layers.append(LayerScales(ks, vs, ko, vo))
    notes: list[Said] = []
    if missing:
        notes.append(
            said(
                "kvcache.missing_scales",
                missing=len(missing),
                layers=len(prefixes),
                first=missing[0],
                default="1.0" if fmt.is_fp8 else "1.0 / offset 0",
            )
        )
    if not fmt.is_fp8:
        desc = ckpt.quant_description or {}
        if desc.get("kv_cache_type") != "C8":
            notes.append(said("kvcache.no_c8_type"))
        if any(
            bool(
                (s.k_offset is not None and s.k_offset.abs().max() > 0)
                or (s.v_offset is not None and s.v_offset.abs().max() > 0)
            )
            for s in layers
        ):
            notes.append(said("kvcache.offset_ignored"))
    return ScaleSet(fmt, "checkpoint", layers, notes)


def engine_refuses(fmt: KVFormat, ckpt: Checkpoint) -> str | None:
    """Why the engine would refuse to serve this checkpoint with ``fmt``, or None.

    vLLM (``_init_kv_cache_quant``) raises "fp8_e5m2 kv-cache is not supported with fp8
    checkpoints" whenever the checkpoint's quantization gives attention a KV-scale method:
    ``quant_method: fp8``, or compressed-tensors with a ``kv_cache_scheme``."""
    from adaptgate.formats.detect import detect_quantization

    if fmt.name != "fp8_e5m2":
        return None
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    if scheme.method == "fp8" or (scheme.method == "compressed-tensors" and scheme.kv_cache_scheme):
        return (
            f"vLLM refuses fp8_e5m2 for this {scheme.label} checkpoint "
            '("fp8_e5m2 kv-cache is not supported with fp8 checkpoints")'
        )
    return None


def write_scales(out_dir: Path, sets: list[ScaleSet], prefixes: list[str]) -> list[Path]:
    """Writes calibrated scales in the engines' tensor names: vLLM's per-tensor
    ``<attn>.k_scale``/``v_scale`` (float32 scalars) with the compressed-tensors
    ``kv_cache_scheme`` to declare them, and msModelSlim C8's per-channel
    ``<attn>.{k,v}_proj.kv_cache_{scale,offset}`` with the description entries."""
    import torch

    from adaptgate.checkpoint.writer import save_tensors
    from adaptgate.results import write_json_atomic

    written: list[Path] = []
    for ss in sets:
        if ss.format.name == "fp8_e4m3":
            tensors = {}
            for a, s in zip(prefixes, ss.layers, strict=True):
                tensors[f"{a}.k_scale"] = s.k.reshape(()).to(torch.float32).clone()
                tensors[f"{a}.v_scale"] = s.v.reshape(()).to(torch.float32).clone()
            out = out_dir / "vllm"
            save_tensors(tensors, out, prefix=VLLM_FILE.removesuffix(".safetensors"))
            write_json_atomic(out / VLLM_SCHEME_FILE, {"kv_cache_scheme": KV_CACHE_SCHEME})
            written += [out / VLLM_FILE, out / VLLM_SCHEME_FILE]
        elif ss.format.name == "int8_c8":
            tensors = {}
            desc: dict[str, str] = {"kv_cache_type": "C8", "kv_quant_type": "C8"}
            for a, s in zip(prefixes, ss.layers, strict=True):
                assert s.k_offset is not None and s.v_offset is not None
                for proj, scale, offset in (("k", s.k, s.k_offset), ("v", s.v, s.v_offset)):
                    for what, t in (("scale", scale), ("offset", offset)):
                        name = f"{a}.{proj}_proj.kv_cache_{what}"
                        tensors[name] = t.reshape(-1).to(torch.float32).clone()
                        desc[name] = "C8"
            out = out_dir / "msmodelslim"
            save_tensors(tensors, out, prefix=C8_FILE.removesuffix(".safetensors"))
            write_json_atomic(out / C8_DESCRIPTION_FILE, desc)
            written += [out / C8_FILE, out / C8_DESCRIPTION_FILE]
    return written
