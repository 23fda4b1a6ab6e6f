"""adaptgate.checkpoint.writer (tests live here: this suite's owner also owns the writer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from adaptgate.checkpoint import SAFETENSORS_DTYPES
from adaptgate.checkpoint.writer import (
    plan_shards,
    save_tensors,
    shard_file_name,
    write_safetensors,
)
from adaptgate.errors import UsageError


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=40), st.data())
def test_plan_shards_exact_count(sizes, data):
    n = data.draw(st.integers(1, len(sizes)))
    groups = plan_shards(sizes, shards=n)
    assert len(groups) == n and all(groups)
    assert [i for g in groups for i in g] == list(range(len(sizes)))  # contiguous, in order


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(1, 3000))
def test_plan_shards_max_bytes(sizes, limit):
    groups = plan_shards(sizes, max_shard_bytes=limit)
    assert [i for g in groups for i in g] == list(range(len(sizes)))
    for g in groups:
        assert len(g) == 1 or sum(sizes[i] for i in g) <= limit


def tensors() -> dict[str, torch.Tensor]:
    return {
        "b.weight": torch.randn(8, 4).to(torch.bfloat16),
        "a.weight": torch.ones(16, 16, dtype=torch.float8_e4m3fn),
        "a.weight_scale_inv": torch.ones(1, 1),
        "c.bias": torch.arange(5, dtype=torch.int8),
    }


def test_single_file(tmp_path):
    t = tensors()
    assert save_tensors(t, tmp_path) == ["model.safetensors"]
    back = load_file(tmp_path / "model.safetensors")
    assert set(back) == set(t)
    assert all(torch.equal(back[k].view(torch.uint8), t[k].view(torch.uint8)) for k in t)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp left


def test_sharded_with_index(tmp_path):
    t = tensors()
    files = save_tensors(t, tmp_path, shards=3, prefix="quant_model_weights")
    assert files == [shard_file_name("quant_model_weights", i, 3) for i in (1, 2, 3)]
    assert files[0] == "quant_model_weights-00001-of-00003.safetensors"
    index = json.loads((tmp_path / "quant_model_weights.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 8 * 4 * 2 + 256 + 4 + 5
    assert set(index["weight_map"]) == set(t)
    for name, file in index["weight_map"].items():
        assert name in load_file(tmp_path / file)


def test_always_index_and_custom_index_name(tmp_path):
    files = save_tensors(tensors(), tmp_path, always_index=True, index_name="idx.json")
    assert files == ["model-00001-of-00001.safetensors"]
    assert (tmp_path / "idx.json").is_file()


def test_errors(tmp_path):
    with pytest.raises(UsageError):
        save_tensors({}, tmp_path)
    with pytest.raises(UsageError):
        save_tensors(tensors(), tmp_path, shards=9)
    with pytest.raises(UsageError):
        save_tensors(tensors(), tmp_path, shards=2, max_shard_bytes=10)


# -- the streamed file: byte for byte what safetensors' own save_file writes ------------------


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
