"""Checkpoint tensors as float tensors, one at a time, whatever the on-disk format.

- Unquantized tensors are read and upcast exactly (bf16/fp16 -> float32).
- FP8 weights (fine-grained block, compressed-tensors tensor/channel/block) are paired with their
  scales by :mod:`adaptgate.formats.pairing` (the converter's rules and structural errors) and
  dequantized exactly in float32 by :func:`adaptgate.formats.dequantize.dequantize`.
- Ascend W8A8_DYNAMIC weights (int8 + per-channel ``weight_scale``/``weight_offset``) are
  dequantized in float32 by :func:`adaptgate.formats.ascend.dequantize_w8a8_dynamic`.
- compressed-tensors int8 W8A8 weights (symmetric, per-channel ``weight_scale``) are ``q * s``
  in float32, exact (the compressed-tensors library's ``dequantize`` with a float32 scale).
- Integer weights that nothing above pairs with a scale are refused: raw codes never reach the
  model as values.

Scales, offsets and activation/KV scales are consumed here and never reach the model. Every raw
tensor read is hashed (sha256 of its bytes), which gives the dump's model hash, and counted in
``bytes_read`` (the dump's bytes read per pass).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adaptgate.errors import UsageError
from adaptgate.formats.dequantize import FP8_CODES
from adaptgate.formats.detect import detect_quantization, is_quant_metadata
from adaptgate.formats.names import DROPPED_SUFFIXES
from adaptgate.formats.pairing import (
    Quant,
    ascend_pairs,
    int8_channel_pairs,
    pair_fp8,
    scale_layouts,
    unpaired_codes,
)

if TYPE_CHECKING:
    import torch

    from adaptgate.checkpoint import Checkpoint

_LAYER_RE_TEMPLATE = r"(?:^|\.){name}\.(\d+)\."


@dataclass
class WeightSource:
    """Float tensors by checkpoint name: ``read(name)``; ``names`` excludes consumed metadata."""

    ckpt: Checkpoint
    scheme_label: str
    names: list[str]
    fp8: dict[str, Quant] = field(default_factory=dict)  # FP8 weight -> its scale pairing
    ascend: dict[str, tuple[str, str]] = field(default_factory=dict)  # int8 weight -> (s, o)
    int8: dict[str, str] = field(default_factory=dict)  # compressed-tensors int8 weight -> scale
    skipped: list[str] = field(default_factory=list)  # metadata the model never sees
    digests: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0  # checkpoint bytes read so far (weights, scales, offsets)

    def _raw(self, name: str) -> torch.Tensor:
        tensor = self.ckpt.read_tensor(name)
        self.bytes_read += tensor.numel() * tensor.element_size()
        if name not in self.digests:
            import torch

            data = tensor.contiguous().view(torch.uint8).reshape(-1).numpy()
            self.digests[name] = hashlib.sha256(data.data).hexdigest()
        return tensor

    def read(self, name: str) -> torch.Tensor:
        """The tensor in float32 (integer tensors other than quantized weights keep their type)."""
        import torch

        raw = self._raw(name)
        quant = self.fp8.get(name)
        if quant is not None:
            from adaptgate.formats.dequantize import dequantize

            scale = self._raw(quant.scale)
            out, _ = dequantize(
                raw, scale, strategy=quant.strategy, block=quant.block, target="f32"
            )
            return out
        scale_name = self.int8.get(name)
        if scale_name is not None:
            scale = self._raw(scale_name).to(torch.float32).reshape(-1, 1)
            return raw.to(torch.float32) * scale
        pair = self.ascend.get(name)
        if pair is not None:
            from adaptgate.formats.ascend import dequantize_w8a8_dynamic

            scale, offset = self._raw(pair[0]), self._raw(pair[1])
            return dequantize_w8a8_dynamic(raw, scale, offset).to(torch.float32)
        if raw.is_floating_point():
            return raw.to(torch.float32)
        return raw

    def model_hash(self) -> str | None:
        """sha256 over every read tensor's (name, digest), or None until all were read."""
        wanted = set(self.names) | {q.scale for q in self.fp8.values()}
        wanted |= {n for pair in self.ascend.values() for n in pair} | set(self.int8.values())
        if not wanted <= set(self.digests):
            return None
        h = hashlib.sha256()
        for name in sorted(wanted):
            h.update(f"{name}\0{self.digests[name]}\n".encode())
        return h.hexdigest()


def _fp8_pairs(ckpt: Checkpoint, other_scales: set[str]) -> tuple[dict[str, Quant], set[str]]:
    layouts = scale_layouts(ckpt.config, ckpt.tensors, ckpt.quant_description).layouts
    pairs = pair_fp8(ckpt.tensors, layouts, [n for n in ckpt.tensors if n not in other_scales])
    dropped = {n for n in ckpt.tensors if n.rsplit(".", 1)[-1] in DROPPED_SUFFIXES}
    return pairs, {q.scale for q in pairs.values()} | dropped


def open_weights(ckpt: Checkpoint) -> WeightSource:
    """Plans how each tensor is read; raises for formats the reference cannot dequantize."""
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    if scheme.method not in ("none", "fp8", "compressed-tensors", "ascend"):
        raise UsageError(
            f"the reference cannot dequantize {scheme.label} ({scheme.method}) weights",
            fix="supported: unquantized, FP8 (block / compressed-tensors), compressed-tensors "
            "int8 W8A8 and Ascend W8A8_DYNAMIC checkpoints",
        )
    fp8: dict[str, Quant] = {}
    ascend: dict[str, tuple[str, str]] = {}
    int8: dict[str, str] = {}
    consumed: set[str] = set()
    if scheme.method == "ascend":
        ascend = ascend_pairs(ckpt.tensors, ckpt.quant_description or {})
        consumed = {n for pair in ascend.values() for n in pair}
    else:
        if scheme.method == "compressed-tensors":
            int8 = int8_channel_pairs(ckpt.tensors, scheme)
        if any(i.dtype in FP8_CODES for i in ckpt.tensors.values()):
            fp8, consumed = _fp8_pairs(ckpt, set(int8.values()))
        consumed |= set(int8.values())
    raw = unpaired_codes(ckpt.tensors, set(ascend) | set(int8))
    if raw:
        raise UsageError(
            f"{raw[0]} holds {ckpt.tensors[raw[0]].dtype} codes with no scale the reference "
            f"knows how to apply ({scheme.label}); it will not read codes as weights",
            fix="produce the reference from the checkpoint this one was quantized from",
        )
    names, skipped = [], []
    for name in ckpt.tensors:
        if name in consumed or is_quant_metadata(name):
            skipped.append(name)
        else:
            names.append(name)
    return WeightSource(ckpt, scheme.label, names, fp8, ascend, int8, skipped)


def layer_index(name: str, layer_container: str) -> int | None:
    """The decoder-layer index of a checkpoint name (``...layers.7.mlp...`` -> 7), else None."""
    match = re.search(_LAYER_RE_TEMPLATE.format(name=re.escape(layer_container)), name)
    return int(match.group(1)) if match else None
