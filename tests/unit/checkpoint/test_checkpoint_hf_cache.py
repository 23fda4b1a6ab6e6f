"""Hub ids resolve in the local Hugging Face cache only (a fake cache built in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from ckpt_testlib import assert_one_line
from safetensors.torch import save_file

from adaptgate.checkpoint import hf_hub_cache_dir, open_checkpoint, resolve_model_path
from adaptgate.errors import CheckpointNotFound

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _blob(repo: Path, name: str, content: bytes, snapshot: Path) -> None:
    """Stores content as huggingface_hub does: a blob, and a relative symlink in the snapshot."""
    blob = repo / "blobs" / f"{abs(hash(content))}{name.replace('/', '_')}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(content)
    link = snapshot / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(blob, link.parent), link)


def _fake_cache(cache: Path, repo_id: str, commit: str = COMMIT, ref: str | None = "main") -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    tmp = cache.parent / f"weights-{commit[:6]}.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(tmp))
    _blob(repo, "model-00001-of-00001.safetensors", tmp.read_bytes(), snapshot)
    index = {"metadata": {}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}
    _blob(repo, "model.safetensors.index.json", json.dumps(index).encode(), snapshot)
    _blob(repo, "config.json", b'{"model_type": "qwen3"}', snapshot)
    _blob(repo, "tokenizer.json", b"{}", snapshot)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: nothing may reach the network
    return cache


def test_hub_id_resolves_to_snapshot(cache: Path) -> None:
    snapshot = _fake_cache(cache, "Qwen/Qwen3-0.6B-FP8")
    assert resolve_model_path("Qwen/Qwen3-0.6B-FP8") == snapshot
    ckpt = open_checkpoint("Qwen/Qwen3-0.6B-FP8")  # index entries are symlinks into ../../blobs
    assert ckpt.root == snapshot and ckpt.tokenizer_files == ["tokenizer.json"]
    assert torch.equal(ckpt.read_tensor("w"), torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_revision_and_single_snapshot_without_refs(cache: Path) -> None:
    snapshot = _fake_cache(cache, "org/no-refs", ref=None)
    assert resolve_model_path("org/no-refs") == snapshot
    assert resolve_model_path(f"org/no-refs@{COMMIT}") == snapshot
    other = _fake_cache(cache, "org/two", commit="f" * 40, ref="v1")
    assert resolve_model_path("org/two@v1") == other


def test_several_snapshots_without_main_ref_is_ambiguous(cache: Path) -> None:
    _fake_cache(cache, "org/m", commit="a" * 40, ref=None)
    (cache / "models--org--m" / "snapshots" / ("b" * 40)).mkdir()
    with pytest.raises(CheckpointNotFound) as info:
        resolve_model_path("org/m")
    assert_one_line(info.value, "org/m", "several snapshots")


def test_unknown_id_is_not_in_local_cache(cache: Path) -> None:
    with pytest.raises(CheckpointNotFound) as info:
        resolve_model_path("nobody/nothing")
    assert_one_line(info.value, "nobody/nothing", "not in the local Hugging Face cache", str(cache))
    assert "hf download nobody/nothing" in (info.value.fix or "")
    with pytest.raises(CheckpointNotFound, match="not in the local Hugging Face cache"):
        resolve_model_path("nobody/nothing@v9")


def test_hf_home_and_xdg_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hf_hub_cache_dir() == tmp_path / "home" / "hub"
    snapshot = _fake_cache(tmp_path / "home" / "hub", "org/m")
    assert resolve_model_path("org/m") == snapshot
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"


def test_local_dir_wins_over_cache(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_cache(cache, "org/m")
    local = tmp_path / "org" / "m"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("org/m") == local


def test_path_objects_are_never_looked_up_in_cache(cache: Path) -> None:
    _fake_cache(cache, "org/m")
    with pytest.raises(CheckpointNotFound, match="does not exist"):
        resolve_model_path(Path("org/m"))


@pytest.mark.parametrize("spec", ["/abs/missing/dir", "./rel/missing", "a/b/c", "x--y/z"])
def test_paths_that_are_not_hub_ids(cache: Path, spec: str) -> None:
    with pytest.raises(CheckpointNotFound) as info:
        resolve_model_path(spec)
    assert_one_line(info.value, "does not exist")
