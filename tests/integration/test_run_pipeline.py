"""`adaptgate run` end to end on a tiny real-format checkpoint, through the real CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "report"))
from report_language import english_runs


@pytest.mark.slow
def test_run_on_fp8_demo_model_writes_run_json_and_report(tiny_model, tmp_path, adaptgate_cli):
    model = tiny_model(arch="qwen3", format="fp8_block")
    run_dir = tmp_path / "run"
    args = ["run", str(model), "--target", "ascend-a2", "--device", "910b4", "--release", "0.23.0"]
    args += ["--kv-formats", "fp8_e4m3,int8_c8", "--run-dir"]
    done = adaptgate_cli(*args, str(run_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads((run_dir / "run.json").read_text())
    gates = {g["name"]: g for g in record["gates"]}
    assert gates["inspect"]["status"] == "PASS"
    assert gates["report"]["status"] == "PASS"
    inspect = gates["inspect"]["result"]
    # on 0.23.0 (before native block-FP8) the checkpoint cannot run on A2: inspect must route
    # it through a conversion
    assert inspect["support"]["verdict"] == "NEEDS_CONVERSION"
    assert inspect["recommended"] in {"bf16", "w8a8_dynamic"}
    # every number in the report's summary comes from run.json
    report = (run_dir / "REPORT.md").read_text()
    assert f"Parameters: {gates['inspect']['summary']['total_params']:,}" in report  # key results
    assert f"{inspect['params']['total']:,}" in report
    assert (run_dir / "inspect" / "ANALYSIS_REPORT.md").is_file()
    # issue 19: a run written now renders its zh report without an English sentence -- the
    # launch plan's flags and env, the skipped serve stages, the conversion, the KV-cache and
    # precision verdicts included
    assert {gates[g]["status"] for g in ("convert", "kvcache", "precision")} <= {"PASS", "FAIL"}
    english = english_runs((run_dir / "REPORT.zh.md").read_text())
    assert not english, english

    # a rerun resumes: inspect is kept, the report is rendered again
    again = adaptgate_cli(*args, str(run_dir), cwd=tmp_path)
    assert again.returncode == 0
    assert "kept from the earlier run" in again.stderr


def test_run_on_missing_model_is_one_line_exit_2_and_writes_nothing(tmp_path, adaptgate_cli):
    run_dir = tmp_path / "run"
    done = adaptgate_cli(
        "run", str(tmp_path / "nope"), "--target", "cpu", "--run-dir", str(run_dir), cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "adaptgate: error:" in done.stderr
    assert not run_dir.exists()


def test_report_command_rerenders_from_run_json(tiny_model, tmp_path, adaptgate_cli):
    model = tiny_model(arch="qwen3", format="bf16")
    run_dir = tmp_path / "run"
    args = ["run", str(model), "--target", "cpu", "--run-dir", str(run_dir)]
    done = adaptgate_cli(*args, "--only", "inspect,report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir / "REPORT.md").unlink()
    done = adaptgate_cli("report", str(run_dir), "--json", cwd=tmp_path)
    assert done.returncode == 0
    assert str(run_dir / "REPORT.md") in json.loads(done.stdout)["files"]
    assert "adaptation report" in (run_dir / "REPORT.md").read_text()


def test_run_refuses_an_unknown_release_before_writing_anything(tmp_path, adaptgate_cli):
    run_dir = tmp_path / "run"
    done = adaptgate_cli(
        "run", "unused", "--target", "ascend-a2", "--release", "0.99.9", "--run-dir",
        str(run_dir), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown vllm-ascend release" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and not run_dir.exists()
