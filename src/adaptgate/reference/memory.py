"""Memory facts: the budget for weights, choosing full-load or layer-streamed mode, the peak."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptgate.reference.weights import WeightSource

# The default budget for weights is this share of available memory (the rest is the margin for
# activations, logits, the dump and the OS): a model under it is fully loaded, and in streamed
# mode dequantized layers are kept (cached) in RAM up to it.
FULL_LOAD_SHARE = 0.6


# glibc mallopt parameters and their defaults
_M_MMAP_MAX, _MMAP_MAX_DEFAULT = -4, 65536  # how many blocks may be mmapped at once
_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_DEFAULT = -1, 128 * 1024  # free() trims a top this large


class _Heap:
    reusing = False  # inside reusing_heap()


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def trim_heap() -> None:
    """Returns freed heap pages to the OS (glibc), so RSS follows what is really held; not
    inside :func:`reusing_heap`, whose freed pages are for the next layer."""
    libc = _libc()
    if libc is not None and not _Heap.reusing:
        with suppress(AttributeError):
            libc.malloc_trim(0)


@contextmanager
def reusing_heap(active: bool = True) -> Iterator[None]:
    """For the decoder layers of a streamed pass (``active``; otherwise nothing): each layer's
    weights reuse the pages the last layer freed. glibc serves blocks over 32 MiB with fresh
    mmaps, whose every page faults when first written (page faults were 40-60% of a streamed
    pass's time); inside, large blocks come from the heap instead and freed units are not
    trimmed. The heap is trimmed on exit, so the embeddings and LM head, loaded outside, are not
    held in it."""
    libc = _libc()
    if not active or libc is None or _Heap.reusing:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    _Heap.reusing = True
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_DEFAULT)
        _Heap.reusing = False
        trim_heap()


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


def model_bytes(weights: WeightSource, element_size: int, names: list[str] | None = None) -> int:
    """The loaded size of ``names`` (default: the whole model) at ``element_size`` bytes/element."""
    chosen = weights.names if names is None else names
    return sum(weights.ckpt.tensors[n].numel * element_size for n in chosen)


def memory_budget(max_memory: int | None) -> int | None:
    """Bytes of weights the reference may hold: ``max_memory`` when given, else
    ``FULL_LOAD_SHARE`` of what is free (MemAvailable); None when unknown (off Linux)."""
    if max_memory is not None:
        return max_memory
    available = available_bytes()
    return int(FULL_LOAD_SHARE * available) if available is not None else None


def should_stream(
    weights: WeightSource, element_size: int, device: str, budget: int | None = None
) -> bool:
    """Stream when the model does not fit the budget (default: :func:`memory_budget`'s), on CPU
    devices only: an accelerator's memory is the user's to size."""
    if not device.startswith("cpu"):
        return False
    if budget is None:
        budget = memory_budget(None)
    if budget is None:
        return False
    return model_bytes(weights, element_size) > budget
