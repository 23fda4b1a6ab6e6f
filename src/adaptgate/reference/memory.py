"""Memory facts for choosing full-load or layer-streamed mode, and measuring the peak."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptgate.reference.weights import WeightSource

# Full load when the model in the compute dtype takes at most this share of available memory
# (the rest is activations, logits, the dump and the OS).
FULL_LOAD_SHARE = 0.6


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """This process's peak resident set (VmHWM), or None off Linux."""
    kib = _status_kib("VmHWM")
    return kib * 1024 if kib is not None else None


def available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def model_bytes(weights: WeightSource, element_size: int) -> int:
    """The loaded model's size: every parameter tensor at ``element_size`` bytes/element."""
    return sum(weights.ckpt.tensors[n].numel * element_size for n in weights.names)


def should_stream(weights: WeightSource, element_size: int, device: str) -> bool:
    """Stream when the model would not fit comfortably in host memory (CPU devices only: an
    accelerator's memory is the user's to size)."""
    if not device.startswith("cpu"):
        return False
    available = available_bytes()
    if available is None:
        return False
    return model_bytes(weights, element_size) > FULL_LOAD_SHARE * available
