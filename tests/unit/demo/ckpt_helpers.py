"""Reading demo checkpoints back in tests (independent of adaptgate's own readers)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open


def weight_files(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.safetensors"))


def load_all(model_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in weight_files(model_dir):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                assert key not in out, f"{key} stored twice"
                out[key] = f.get_tensor(key)
    return out


def config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())
