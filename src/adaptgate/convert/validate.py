"""Checks that read data, run before anything is written: scale values and disk space.

Every scale is read once (scales are ~1/16,000 of the weights) and must be finite and positive.
``ue8m0`` scales stored as floats should be powers of two; when they are not, a warning says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from adaptgate.checkpoint import Checkpoint
from adaptgate.convert.models import ConversionPlan
from adaptgate.errors import ConversionInputError, NoDiskSpace
from adaptgate.messages import Said, said

_FIX = "the checkpoint is corrupt or was quantized wrongly; re-download or re-export it"
DISK_MARGIN = 64 * 1024 * 1024  # config, tokenizer, conversion.json and file system slack


def _first_index(mask: object, shape: tuple[int, ...]) -> list[int]:
    import torch

    assert isinstance(mask, torch.Tensor)
    flat = int(torch.nonzero(mask.reshape(-1))[0].item())
    index = []
    for dim in reversed(shape):
        index.append(flat % dim)
        flat //= dim
    return index[::-1]


def check_scales(ckpt: Checkpoint, plan: ConversionPlan, *, ue8m0: bool = False) -> list[Said]:
    """Raises on the first scale with a NaN/inf or non-positive value; returns warnings."""
    import torch

    warnings: list[Said] = []
    not_pow2: list[str] = []
    seen: set[str] = set()
    for t in plan.tensors:
        if t.quant is None or t.quant.scale in seen:
            continue
        seen.add(t.quant.scale)
        scale = ckpt.read_tensor(t.quant.scale).to(torch.float32)
        shape = tuple(scale.shape)
        bad = ~torch.isfinite(scale)
        if bool(bad.any()):
            raise ConversionInputError(
                f"scale {t.quant.scale!r} has {int(bad.sum())} NaN/inf values "
                f"(first at {_first_index(bad, shape)})",
                fix=_FIX,
            )
        bad = scale <= 0
        if bool(bad.any()):
            first = float(scale.reshape(-1)[bad.reshape(-1)][0])
            raise ConversionInputError(
                f"scale {t.quant.scale!r} has {int(bad.sum())} values <= 0 "
                f"(first at {_first_index(bad, shape)}: {first})",
                fix=_FIX,
            )
        if ue8m0 and t.quant.scale_dtype != "F8_E8M0":
            mantissa, _ = torch.frexp(scale)
            if bool((mantissa != 0.5).any()):
                not_pow2.append(t.quant.scale)
    if not_pow2:
        warnings.append(said("convert.ue8m0_not_pow2", count=len(not_pow2), example=not_pow2[0]))
    return warnings


def check_disk_space(out_dir: Path, needed: int) -> None:
    """Raises unless the file system of ``out_dir`` has ``needed`` bytes (plus a margin) free."""
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + DISK_MARGIN:
        raise NoDiskSpace(
            f"not enough disk space for {out_dir}: the output needs {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB are free",
            fix="free space or write the output to another file system",
        )
