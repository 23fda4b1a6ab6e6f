"""``adaptgate demo-model``: thin CLI over make_model."""

from __future__ import annotations

import json

from click.testing import CliRunner

from adaptgate.cli.main import cli


def test_writes_and_prints_json(tmp_path):
    out = tmp_path / "m"
    args = ["demo-model", str(out), "--arch", "qwen3_moe", "--format", "fp8_block",
            "--block", "64x128", "--scale-dtype", "float32", "--shards", "2", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["path"] == str(out) and info["format"] == "fp8_block"
    assert info["weight_files"] == ["model-00001-of-00002.safetensors",
                                    "model-00002-of-00002.safetensors"]  # fmt: skip
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization_config"]["weight_block_size"] == [64, 128]
    assert not (tmp_path / "m.partial").exists()


def test_refuses_non_empty_out(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["demo-model", str(out)])
    assert result.exit_code == 2
    assert "not empty" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"


def test_bad_options_exit_2(tmp_path):
    runner = CliRunner()
    for args in (["--block", "12", "--format", "fp8_block"], ["--ue8m0"], ["--shards", "0"]):
        result = runner.invoke(cli, ["demo-model", str(tmp_path / "m"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("adaptgate: error:")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()
