"""Helpers for the convert tests: hand-built FP8 checkpoints and loading outputs back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from adaptgate.convert.engine import run_conversion
from adaptgate.convert.models import ConversionResult, ConvertOptions, Target

FP8_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "torch_dtype": "bfloat16",
    "quantization_config": {
        "quant_method": "fp8",
        "fmt": "e4m3",
        "activation_scheme": "dynamic",
        "weight_block_size": [128, 128],
    },
}


def fp8_linear(
    out_f: int,
    in_f: int,
    *,
    seed: int = 0,
    block: tuple[int, int] = (128, 128),
    scale_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(out_f, in_f, generator=g) * 80).clamp(-448, 448).to(torch.float8_e4m3fn)
    grid = (-(-out_f // block[0]), -(-in_f // block[1]))
    s = (torch.rand(grid, generator=g) * 1e-3 + 1e-4).to(scale_dtype)
    return q, s


def write_model(
    root: Path,
    files: dict[str, dict[str, torch.Tensor]],
    *,
    config: dict[str, Any] | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Writes safetensors files (an index when more than one) and config.json."""
    root.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    total = 0
    for name, tensors in files.items():
        save_file(tensors, str(root / name), metadata={"format": "pt"})
        for key, t in tensors.items():
            weight_map[key] = name
            total += t.numel() * t.element_size()
    if len(files) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (root / "model.safetensors.index.json").write_text(json.dumps(index))
    (root / "config.json").write_text(json.dumps(config or FP8_CONFIG))
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def small_fp8_model(root: Path, **kw: Any) -> Path:
    q, s = fp8_linear(256, 384, seed=1)
    q2, s2 = fp8_linear(200, 130, seed=2)
    files = {
        "model.safetensors": {
            "model.layers.0.mlp.down_proj.weight": q,
            "model.layers.0.mlp.down_proj.weight_scale_inv": s,
            "model.layers.0.self_attn.o_proj.weight": q2,
            "model.layers.0.self_attn.o_proj.weight_scale_inv": s2,
            "model.norm.weight": torch.ones(384, dtype=torch.bfloat16),
        }
    }
    return write_model(root, files, **kw)


def convert(model: Path, out: Path, target: str, **kw: Any) -> ConversionResult:
    opts = ConvertOptions(model=str(model), out=out, target=Target(target), **kw)
    return run_conversion(opts)


def load_dir(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file in ``path``."""
    out = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                out[key] = fh.get_tensor(key)
    return out


def bits(t: torch.Tensor) -> torch.Tensor:
    """An integer view, so NaN payloads and signed zeros compare exactly."""
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(view)


def tensorwise_sha256(path: Path) -> str:
    """The source digest recomputed independently: sha256 of the header's sha256 followed by
    every tensor's sha256, in file order."""
    import hashlib
    import struct

    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    start = 8 + n
    outer = hashlib.sha256(hashlib.sha256(data[:start]).digest())
    for entry in sorted(header.values(), key=lambda e: e["data_offsets"]):
        a, b = entry["data_offsets"]
        outer.update(hashlib.sha256(data[start + a : start + b]).digest())
    return outer.hexdigest()
