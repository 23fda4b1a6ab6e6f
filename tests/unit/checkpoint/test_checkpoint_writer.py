"""The streamed safetensors writer: byte for byte what safetensors' own ``save_file`` writes, on
random tensors of every dtype torch and safetensors share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from adaptgate.checkpoint import SAFETENSORS_DTYPES
from adaptgate.checkpoint.writer import write_safetensors


def _random(code: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    dt = SAFETENSORS_DTYPES[code]
    assert dt.torch_name is not None
    nbytes = 1
    for d in shape:
        nbytes *= d
    nbytes = nbytes * dt.bits // 8
    raw = torch.randint(
        0, 256 if code != "BOOL" else 2, (nbytes,), dtype=torch.uint8, generator=gen
    )
    if code == "F4":  # two values per element of float4_e2m1fn_x2
        shape = (*shape[:-1], shape[-1] // 2)
    return raw.view(getattr(torch, dt.torch_name)).reshape(shape)


SHARED = [
    code
    for code, dt in SAFETENSORS_DTYPES.items()
    if dt.torch_name is not None and hasattr(torch, dt.torch_name)
]


@pytest.mark.parametrize("seed", range(3))
def test_streamed_file_equals_safetensors_save_file(tmp_path: Path, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (8,), (2, 2, 6), (), (0, 4)]
    tensors = {}
    for i, code in enumerate(SHARED):
        shape = shapes[(i + seed) % len(shapes)]
        if SAFETENSORS_DTYPES[code].packed and (not shape or shape[-1] % 2):
            shape = (2, 4)
        tensors[f"t{(i * 7 + seed) % len(SHARED)}.{code.lower()}"] = _random(code, shape, gen)
    try:
        save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"format": "pt"})
    except (TypeError, ValueError, KeyError) as exc:  # this safetensors lacks a dtype torch has
        pytest.fail(f"safetensors cannot write {sorted(tensors)}: {exc}")
    write_safetensors(tensors, tmp_path / "mine.safetensors")
    assert (tmp_path / "mine.safetensors").read_bytes() == (
        tmp_path / "ref.safetensors"
    ).read_bytes()
    with safe_open(str(tmp_path / "mine.safetensors"), framework="pt") as fh:
        for name, t in tensors.items():
            got = fh.get_tensor(name)
            assert got.dtype == t.dtype and got.shape == t.shape
            assert torch.equal(got.reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    transposed = torch.arange(6.0).reshape(2, 3).t()  # written contiguous
    write_safetensors({"a": transposed}, tmp_path / "ok.safetensors")
    with safe_open(str(tmp_path / "ok.safetensors"), framework="pt") as fh:
        assert torch.equal(fh.get_tensor("a"), transposed)
    meta = torch.empty(4, device="meta")  # fails once the header and "a" are written
    with pytest.raises((NotImplementedError, RuntimeError)):
        write_safetensors({"a": torch.zeros(2), "z": meta}, tmp_path / "x.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.safetensors"]
