"""Every bad input: one line naming the tensor, exit code 2, nothing written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from convert_testlib import FP8_CONFIG, fp8_linear, small_fp8_model, write_model

from adaptgate.cli.convert import command


def run_cli(*args: str):
    return CliRunner().invoke(command, list(args))


def assert_rejected(src: Path, tmp_path: Path, *needles: str, target: str = "bf16") -> str:
    out = tmp_path / "out"
    result = run_cli(str(src), str(out), "--to", target)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("adaptgate: error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    return lines[0]


def _model_with(tmp_path: Path, tensors: dict[str, torch.Tensor], config=None) -> Path:
    return write_model(tmp_path / "src", {"model.safetensors": tensors}, config=config)


@pytest.mark.parametrize(
    ("value", "needle"),
    [(float("nan"), "NaN/inf"), (float("inf"), "NaN/inf"), (0.0, "<= 0"), (-1e-3, "<= 0")],
)
def test_bad_scale_values(tmp_path, value, needle):
    q, s = fp8_linear(256, 256)
    s[1, 0] = value
    src = _model_with(tmp_path, {"layer.weight": q, "layer.weight_scale_inv": s})
    line = assert_rejected(src, tmp_path, "layer.weight_scale_inv", needle, "[1, 0]")
    assert "fix:" in line


def test_fp8_weight_without_scale(tmp_path):
    q, _ = fp8_linear(128, 128)
    src = _model_with(tmp_path, {"x.proj.weight": q})
    assert_rejected(src, tmp_path, "x.proj.weight", "has no scale")


def test_scale_without_weight(tmp_path):
    q, s = fp8_linear(128, 128)
    src = _model_with(
        tmp_path,
        {"a.weight": q, "a.weight_scale_inv": s, "b.weight_scale_inv": s.clone()},
    )
    assert_rejected(src, tmp_path, "b.weight_scale_inv", "no FP8 weight", "does not exist")


def test_scale_of_a_bf16_weight(tmp_path):
    q, s = fp8_linear(128, 128)
    src = _model_with(
        tmp_path,
        {
            "a.weight": q,
            "a.weight_scale_inv": s,
            "b.weight": torch.ones(128, 128, dtype=torch.bfloat16),
            "b.weight_scale_inv": s.clone(),
        },
    )
    assert_rejected(src, tmp_path, "b.weight_scale_inv", "BF16")


def test_wrong_grid_shape(tmp_path):
    q, _ = fp8_linear(576, 300)
    src = _model_with(tmp_path, {"a.weight": q, "a.weight_scale_inv": torch.ones(4, 3)})
    assert_rejected(src, tmp_path, "a.weight_scale_inv", "[4, 3]", "[5, 3]")


def test_unknown_weight_dtype(tmp_path):
    q = torch.zeros(128, 128).to(torch.float8_e4m3fnuz)
    src = _model_with(tmp_path, {"a.weight": q, "a.weight_scale_inv": torch.ones(1, 1)})
    assert_rejected(src, tmp_path, "a.weight", "F8_E4M3FNUZ")


def test_unknown_scale_dtype(tmp_path):
    q, _ = fp8_linear(128, 128)
    src = _model_with(
        tmp_path, {"a.weight": q, "a.weight_scale_inv": torch.ones(1, 1, dtype=torch.int32)}
    )
    assert_rejected(src, tmp_path, "a.weight_scale_inv", "I32")


def test_truncated_shard(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    path = src / "model.safetensors"
    os.truncate(path, path.stat().st_size - 100)
    assert_rejected(src, tmp_path, "model.safetensors")


def test_not_fp8(tiny_model, tmp_path):
    assert_rejected(tiny_model(arch="qwen3", format="bf16"), tmp_path, "no FP8 weights")


def test_already_ascend(tiny_model, tmp_path):
    assert_rejected(tiny_model(arch="qwen3", format="w8a8_dynamic"), tmp_path, "already in Ascend")


def test_output_exists(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    result = run_cli(str(src), str(tmp_path / "out"), "--to", "bf16")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "out" / "keep.txt").read_text() == "x"


def test_output_inside_source(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    result = run_cli(str(src), str(src / "converted"), "--to", "bf16")
    assert result.exit_code == 2 and "overlaps the source" in result.output


def test_no_disk_space_up_front(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1000))
    src = small_fp8_model(tmp_path / "src")
    assert_rejected(src, tmp_path, "not enough disk space", "GB")


def test_disk_full_while_writing_keeps_the_partial_for_a_rerun(tmp_path, monkeypatch):
    from adaptgate.convert import io

    src = small_fp8_model(tmp_path / "src")
    real = os.pwrite
    calls = {"n": 0}

    def full(fd, data, offset):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(io.os, "pwrite", full)
    result = run_cli(str(src), str(tmp_path / "out"), "--to", "bf16")
    assert result.exit_code == 2 and "disk filled up" in result.output
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(io.os, "pwrite", real)
    result = run_cli(str(src), str(tmp_path / "out"), "--to", "bf16", "--quiet")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_source_is_never_modified(tiny_model, tmp_path):
    src = tiny_model(arch="qwen3", format="fp8_block", shards=3, scale_dtype="float32")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in src.iterdir()}
    assert (
        run_cli(str(src), str(tmp_path / "out"), "--to", "w8a8-dynamic", "--quiet").exit_code == 0
    )
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in src.iterdir()}
    assert before == after


def test_pickle_weights_are_refused(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    torch.save({"a.weight": torch.ones(2, 2)}, root / "pytorch_model.bin")
    import json

    (root / "config.json").write_text(json.dumps(FP8_CONFIG))
    result = run_cli(str(root), str(tmp_path / "out"), "--to", "bf16")
    assert result.exit_code == 2
