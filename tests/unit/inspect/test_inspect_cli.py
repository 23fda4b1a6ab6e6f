from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import inspect_synth as synth
import pytest
from click.testing import CliRunner

from adaptgate.cli.inspect import command
from adaptgate.inspect import InspectOptions, api, inspect_model
from adaptgate.inspect.render import markdown_report, write_outputs

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"


def run(*args: str) -> object:
    return CliRunner().invoke(command, list(args))


def test_cli_glm_on_one_910b4_fails_with_numbers(tmp_path: Path) -> None:
    res = run("--config", str(CONFIGS / "GLM-4.7-FP8.json"), "--device", "910b4", "--json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["kind"] == "inspect" and data["verdict"] == "FAIL"
    assert data["schema_version"] and "28.80 GiB usable" in data["reason"]["text"]


def test_cli_qwen3_4b_passes_and_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run(
        "--config",
        str(CONFIGS / "Qwen3-4B-Thinking-2507-FP8.json"),
        "--device",
        "910b4",
        "--max-model-len",
        "65536",
        "--release",
        "0.18.0",
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output
    report = (out / "ANALYSIS_REPORT.md").read_text()
    assert "Verdict: PASS" in report and "| bf16 * |" in report
    assert "## Model specification" in report and "Qwen3ForCausalLM" in report
    assert json.loads((out / "inspect.json").read_text())["recommended"] == "bf16"
    assert "PASS" in res.stdout


def test_cli_list_devices_and_bad_input() -> None:
    res = run("--list-devices", "--json")
    assert res.exit_code == 0 and {d["id"] for d in json.loads(res.stdout)} >= {"910b4", "a3"}
    assert run().exit_code == 2
    res = run("--config", str(CONFIGS / "Qwen3-8B.json"), "--device", "nope")
    assert res.exit_code == 2 and "910b4" in res.stderr
    res = run("--config", str(CONFIGS / "missing.json"))
    assert res.exit_code == 2


def test_checkpoint_mode_with_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the CPU FP8 kernels need AMX: plan as for a host that has it
    monkeypatch.setattr(api, "host_cpu_flags", lambda: frozenset({"amx_tile"}))
    config = {
        **synth.TINY_QWEN3,
        "quantization_config": {
            "quant_method": "fp8",
            "weight_block_size": [32, 32],
            "activation_scheme": "dynamic",
        },
    }
    bf16 = synth.random_tensors(synth.hf_shapes(config))
    ckpt = synth.write_checkpoint(
        tmp_path / "m", config, synth.fp8_block(bf16, (32, 32), ("embed", "lm_head"))
    )
    result = inspect_model(
        InspectOptions(
            model=str(tmp_path / "m"), device="cpu", cpu_memory_gib=4, max_model_len=2048
        ),
        ckpt,
    )
    total, _ = synth.meta_param_count(config)
    assert result.mode == "checkpoint" and result.params.total == total
    assert result.params_check.diff_pct == 0.0
    assert result.quant.label == "FP8_BLOCK" and result.support.verdict == "SUPPORTED"
    assert result.verdict == "PASS" and result.recommended == "native"
    files = write_outputs(result, tmp_path / "out")
    assert [f.name for f in files] == ["inspect.json", "ANALYSIS_REPORT.md"]
    assert "tensor headers (exact)" in markdown_report(result)


def test_qwen3_4b_numel_reference() -> None:
    config = json.loads((CONFIGS / "Qwen3-4B.json").read_text())
    assert synth.meta_param_count(config)[0] == 4_022_468_096


def test_import_does_not_pull_torch() -> None:
    probe = "print('torch' in sys.modules, 'transformers' in sys.modules)"
    code = f"import sys, adaptgate.inspect; {probe}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
