"""Automatic layer streaming: when the model would not fit comfortably in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adaptgate.checkpoint import open_checkpoint
from adaptgate.reference import memory
from adaptgate.reference.weights import open_weights


def test_streams_only_when_the_model_does_not_fit(
    tiny_model: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = open_weights(open_checkpoint(tiny_model(arch="qwen3", format="bf16")))
    size = memory.model_bytes(weights, 4)
    assert size == 4 * sum(weights.ckpt.tensors[n].numel for n in weights.names)
    monkeypatch.setattr(memory, "available_bytes", lambda: int(size / memory.FULL_LOAD_SHARE) + 1)
    assert not memory.should_stream(weights, 4, "cpu")
    monkeypatch.setattr(memory, "available_bytes", lambda: size)
    assert memory.should_stream(weights, 4, "cpu")
    assert not memory.should_stream(weights, 4, "cuda:0")  # device memory is the user's to size
    assert memory.peak_rss_bytes() is not None


def _rss() -> int:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    return next(int(line.split()[1]) * 1024 for line in status.splitlines()
                if line.startswith("VmRSS:"))  # fmt: skip


def _on_heap(address: int) -> bool:
    """Whether ``address`` lies below the program break (glibc's main heap), not in an mmap."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.sbrk.restype = ctypes.c_void_p
    brk = libc.sbrk(0)
    assert brk is not None
    return address < brk


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc only")
def test_reusing_heap_serves_large_blocks_from_the_heap_and_trims_after() -> None:
    import torch

    size = 64 * 2**20  # glibc mmaps a fresh block this large unless a free heap chunk fits it
    with memory.reusing_heap():
        block = torch.ones(size // 4)
        assert _on_heap(block.data_ptr())  # inside: from the heap, whose freed pages stay
        held = _rss()
        del block
        memory.trim_heap()  # a unit freed inside: not trimmed, the next layer reuses it
        assert _rss() > held - size // 2
    assert _rss() < held - size // 2  # trimmed on exit
