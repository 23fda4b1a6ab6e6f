"""Checkpoint tensors as float tensors, one at a time, whatever the on-disk format.

- Unquantized tensors are read and upcast exactly (bf16/fp16 -> float32).
- FP8 weights (fine-grained block, compressed-tensors tensor/channel/block) are paired with their
  scales by the converter's planner (:func:`adaptgate.convert.plan.plan_conversion`, so pairing
  rules and structural errors are the converter's) and dequantized exactly in float32 by
  :func:`adaptgate.formats.dequantize.dequantize`.
- Ascend W8A8_DYNAMIC weights (int8 + per-channel ``weight_scale``/``weight_offset``) are
  dequantized in float32 by :func:`adaptgate.formats.ascend.dequantize_w8a8_dynamic`.

Scales, offsets and activation/KV scales are consumed here and never reach the model. Every raw
tensor read is hashed (sha256 of its bytes), which gives the dump's model hash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adaptgate.errors import CheckpointFormatError, UsageError
from adaptgate.formats.detect import detect_quantization, is_quant_metadata

if TYPE_CHECKING:
    import torch

    from adaptgate.checkpoint import Checkpoint
    from adaptgate.convert.models import Quant

_LAYER_RE_TEMPLATE = r"(?:^|\.){name}\.(\d+)\."
_ASCEND_SCALE = "weight_scale"
_ASCEND_OFFSET = "weight_offset"


@dataclass
class WeightSource:
    """Float tensors by checkpoint name: ``read(name)``; ``names`` excludes consumed metadata."""

    ckpt: Checkpoint
    scheme_label: str
    names: list[str]
    fp8: dict[str, Quant] = field(default_factory=dict)  # FP8 weight -> its scale pairing
    ascend: dict[str, tuple[str, str]] = field(default_factory=dict)  # int8 weight -> (s, o)
    skipped: list[str] = field(default_factory=list)  # metadata the model never sees
    digests: dict[str, str] = field(default_factory=dict)

    def _raw(self, name: str) -> torch.Tensor:
        tensor = self.ckpt.read_tensor(name)
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
        wanted |= {n for pair in self.ascend.values() for n in pair}
        if not wanted <= set(self.digests):
            return None
        h = hashlib.sha256()
        for name in sorted(wanted):
            h.update(f"{name}\0{self.digests[name]}\n".encode())
        return h.hexdigest()


def _fp8_pairs(ckpt: Checkpoint) -> tuple[dict[str, Quant], set[str]]:
    from adaptgate.convert.models import Action, Target
    from adaptgate.convert.plan import plan_conversion

    plan = plan_conversion(ckpt, Target.BF16, max_shard_size=2**62)
    pairs = {t.source: t.quant for t in plan.tensors if t.action is Action.DEQUANTIZE and t.quant}
    return pairs, {d.name for d in plan.dropped}


def _ascend_pairs(ckpt: Checkpoint) -> tuple[dict[str, tuple[str, str]], set[str]]:
    desc = ckpt.quant_description or {}
    pairs: dict[str, tuple[str, str]] = {}
    consumed: set[str] = set()
    for name, info in ckpt.tensors.items():
        if info.dtype != "I8" or not name.endswith(".weight"):
            continue
        kind = desc.get(name)
        if kind != "W8A8_DYNAMIC":
            raise UsageError(
                f"{name} is Ascend {kind or 'unlisted'}; the reference dequantizes W8A8_DYNAMIC "
                "weights only",
                fix="produce the reference from the checkpoint this one was converted from",
            )
        module = name.removesuffix(".weight")
        scale, offset = f"{module}.{_ASCEND_SCALE}", f"{module}.{_ASCEND_OFFSET}"
        missing = [n for n in (scale, offset) if n not in ckpt.tensors]
        if missing:
            raise CheckpointFormatError(
                f"int8 weight {name} has no {missing[0]}",
                fix="re-export the checkpoint with msModelSlim (or adaptgate convert)",
            )
        pairs[name] = (scale, offset)
        consumed |= {scale, offset}
    return pairs, consumed


def open_weights(ckpt: Checkpoint) -> WeightSource:
    """Plans how each tensor is read; raises for formats the reference cannot dequantize."""
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    fp8: dict[str, Quant] = {}
    ascend: dict[str, tuple[str, str]] = {}
    consumed: set[str] = set()
    has_fp8 = any(i.dtype in ("F8_E4M3", "F8_E5M2") for i in ckpt.tensors.values())
    if scheme.method == "ascend":
        ascend, consumed = _ascend_pairs(ckpt)
    elif has_fp8:
        fp8, consumed = _fp8_pairs(ckpt)
    elif scheme.method not in ("none", "fp8", "compressed-tensors"):
        raise UsageError(
            f"the reference cannot dequantize {scheme.label} ({scheme.method}) weights",
            fix="supported: unquantized, FP8 (block / compressed-tensors) and Ascend "
            "W8A8_DYNAMIC checkpoints",
        )
    names, skipped = [], []
    for name in ckpt.tensors:
        if name in consumed or is_quant_metadata(name):
            skipped.append(name)
        else:
            names.append(name)
    return WeightSource(ckpt, scheme.label, names, fp8, ascend, skipped)


def layer_index(name: str, layer_container: str) -> int | None:
    """The decoder-layer index of a checkpoint name (``...layers.7.mlp...`` -> 7), else None."""
    match = re.search(_LAYER_RE_TEMPLATE.format(name=re.escape(layer_container)), name)
    return int(match.group(1)) if match else None
