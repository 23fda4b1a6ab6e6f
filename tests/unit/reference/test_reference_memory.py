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
