"""compare on real dumps of tiny models: unchanged passes, planted defects fail at their layer,
mismatched dumps are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from adaptgate.cli.compare import command as compare_command
from adaptgate.errors import DumpError
from adaptgate.precision.compare import compare_dumps

pytestmark = pytest.mark.slow
LAYERS, DEFECT_LAYER = 4, 2  # as in this directory's conftest.py


def test_unchanged_model_passes(
    dump_of: Callable[..., Path], fp8_model: Path, tmp_path: Path
) -> None:
    a = dump_of(fp8_model)
    b = dump_of(fp8_model, stream=True)  # another run, other load mode: identical numbers
    result = compare_dumps(a, b, plot_path=tmp_path / "depth.png")
    assert result.verdict == "PASS", result.reason
    assert result.localization.name is None
    assert result.row("logits").metrics.max_abs_err == 0.0  # type: ignore[union-attr]
    assert (tmp_path / "depth.png").stat().st_size > 1000
    # the dumps themselves are identical, tensor for tensor
    from safetensors.torch import load_file

    ta, tb = load_file(a / "reference.safetensors"), load_file(b / "reference.safetensors")
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_transposed_scales_fail_and_name_the_layer(
    dump_of: Callable[..., Path], fp8_model: Path, transposed_scales_model: Path, tmp_path: Path
) -> None:
    result = compare_dumps(
        dump_of(fp8_model), dump_of(transposed_scales_model), plot_path=tmp_path / "d.png"
    )
    assert result.verdict == "FAIL"
    assert result.localization.layer == DEFECT_LAYER
    assert result.localization.module == f"model.layers.{DEFECT_LAYER}"
    assert f"model.layers.{DEFECT_LAYER}" in result.reason.text
    depth = {p.name: p for p in result.localization.depth}
    assert all(depth[f"layer.{i}"].rel_l2 == 0.0 for i in range(DEFECT_LAYER))
    assert result.localization.largest_jump_layer == DEFECT_LAYER


def test_perturbed_layer_is_localized(
    dump_of: Callable[..., Path], tiny_model: Callable[..., Path], perturbed_model: Path
) -> None:
    clean = tiny_model(arch="qwen3", format="bf16", num_layers=LAYERS)
    result = compare_dumps(dump_of(clean), dump_of(perturbed_model))
    assert result.verdict == "FAIL"
    assert result.localization.layer == DEFECT_LAYER


def test_quantized_profile_accepts_fp8_noise_against_bf16(
    dump_of: Callable[..., Path], tiny_model: Callable[..., Path], fp8_model: Path
) -> None:
    bf16 = tiny_model(arch="qwen3", format="bf16", num_layers=LAYERS)
    device = compare_dumps(dump_of(bf16), dump_of(fp8_model))
    assert device.verdict == "FAIL"  # FP8 rounding is not device-level agreement
    quantized = compare_dumps(dump_of(bf16), dump_of(fp8_model), profile="quantized")
    assert quantized.verdict == "PASS", quantized.reason


def test_mismatched_dumps_are_refused_with_one_line(
    dump_of: Callable[..., Path], fp8_model: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "text": "Something else entirely"}) + "\n", "utf-8")
    a, b = dump_of(fp8_model), dump_of(fp8_model, prompts_file=other)
    with pytest.raises(DumpError, match="different prompts"):
        compare_dumps(a, b)
    run = CliRunner().invoke(compare_command, [str(a), str(b)])
    assert run.exit_code == 2
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptgate: error: the dumps hold different")


def test_cli_exit_codes_and_json(
    dump_of: Callable[..., Path], fp8_model: Path, transposed_scales_model: Path, tmp_path: Path
) -> None:
    a, bad = dump_of(fp8_model), dump_of(transposed_scales_model)
    ok = CliRunner().invoke(compare_command, [str(a), str(a), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["verdict"] == "PASS"
    fail = CliRunner().invoke(
        compare_command, [str(a), str(bad), "--plot", str(tmp_path / "p.png")]
    )
    assert fail.exit_code == 1
    assert "model.layers.2" in fail.output and (tmp_path / "p.png").is_file()


def test_transposed_scales_fail_on_the_same_forced_text(
    dump_of: Callable[..., Path], fp8_model: Path, transposed_scales_model: Path
) -> None:
    """The gate's comparison: the defect scores the source's continuation, teacher-forced."""
    source = dump_of(fp8_model)
    forced = dump_of(transposed_scales_model, continuations_from=source, stream=True)
    result = compare_dumps(source, forced)
    assert result.verdict == "FAIL"
    assert result.localization.layer == DEFECT_LAYER
    gen = result.row("gen.logits")
    assert gen is not None and gen.logits is not None
    assert gen.logits.positions == 3 * 8  # every continuation position, not up to a divergence
