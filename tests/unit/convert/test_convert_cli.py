"""The ``convert`` command: JSON on stdout with --json, a table for people, exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from convert_testlib import small_fp8_model

from adaptgate.cli.convert import command


def test_json_output_is_the_record(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    result = CliRunner().invoke(
        command, [str(src), str(tmp_path / "out"), "--to", "fp16", "--json", "--verify"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["kind"] == "conversion" and record["target"] == "fp16"
    assert record["verify"]["problems"] == []
    assert record == json.loads((tmp_path / "out" / "conversion.json").read_text())


def test_human_output_shows_the_summary(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    result = CliRunner().invoke(
        command,
        [str(src), str(tmp_path / "out"), "--to", "w8a8-dynamic", "--max-shard-size", "100KB"],
    )
    assert result.exit_code == 0, result.output
    assert "convert -> w8a8-dynamic" in result.output and "int8 rel. error" in result.output
    assert "model.layers.0" in result.output and "7." in result.output


def test_bad_option_values_exit_2(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    result = CliRunner().invoke(command, [str(src), str(tmp_path / "o"), "--to", "int4"])
    assert result.exit_code == 2
    result = CliRunner().invoke(
        command, [str(src), str(tmp_path / "o"), "--to", "bf16", "--max-shard-size", "lots"]
    )
    assert result.exit_code == 2 and "cannot read size" in result.output


@pytest.mark.parametrize(
    ("args", "layout"),
    [
        ([], "modelslim"),  # no target: Ascend's layout, as before
        (["--target", "ascend-a3"], "modelslim"),
        (["--target", "cpu"], "compressed-tensors"),
        (["--target", "cuda"], "compressed-tensors"),
        (["--target", "cpu", "--format", "modelslim"], "modelslim"),
        (["--format", "compressed-tensors"], "compressed-tensors"),
    ],
)
def test_w8a8_format_follows_the_target_unless_given(tmp_path, args, layout):
    src = small_fp8_model(tmp_path / "src")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        command, [str(src), str(out), "--to", "w8a8-dynamic", "--json", *args]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == layout
    config = json.loads((out / "config.json").read_text())
    assert ("quantization_config" in config) == (layout == "compressed-tensors")
    assert (out / "quant_model_description.json").is_file() == (layout == "modelslim")


def test_format_with_a_float_target_is_one_line_exit_2(tmp_path):
    src = small_fp8_model(tmp_path / "src")
    result = CliRunner().invoke(
        command, [str(src), str(tmp_path / "o"), "--to", "bf16", "--format", "compressed-tensors"]
    )
    assert result.exit_code == 2
    assert "--format compressed-tensors applies to --to w8a8-dynamic" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    fine = CliRunner().invoke(command, [str(src), str(tmp_path / "o"), "--to", "bf16", "--json"])
    assert fine.exit_code == 0 and json.loads(fine.stdout)["format"] is None
