"""Builders for tiny model directories and raw safetensors files (all under tmp_path)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ckpt_testlib import raw_safetensors


@pytest.fixture
def write_raw(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, header: Any = None, data: bytes = b"", **kw: Any) -> Path:
        path = tmp_path / name
        path.write_bytes(raw_safetensors(header, data, **kw))
        return path

    return write


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """make_model({file: {name: tensor}}, index=name, config=dict, extra={file: text})."""
    from safetensors.torch import save_file

    def make(
        shards: dict[str, dict[str, Any]],
        *,
        index: str | None = None,
        config: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> Path:
        root = root or tmp_path / "model"
        root.mkdir(parents=True, exist_ok=True)
        cfg = config if config is not None else {"model_type": "llama", "dtype": "bfloat16"}
        (root / "config.json").write_text(json.dumps(cfg))
        weight_map: dict[str, str] = {}
        total = 0
        for file, tensors in shards.items():
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(root / file))
            for name, t in tensors.items():
                weight_map[name] = file
                total += t.numel() * t.element_size()
        if index:
            (root / index).write_text(
                json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
            )
        for file, text in (extra or {}).items():
            (root / file).parent.mkdir(parents=True, exist_ok=True)
            (root / file).write_text(text)
        return root

    return make
