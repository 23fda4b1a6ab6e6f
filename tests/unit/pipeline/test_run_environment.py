"""The run-shaping ADAPTGATE_* variables in run.json: recorded, read by the gates from the record,
and a resume in another environment refused."""

from __future__ import annotations

import json
from pathlib import Path

import fake_gates  # the test directory is on sys.path (pytest rootdir import mode)
import pytest

from adaptgate.convert.gate import wanted_targets
from adaptgate.errors import RunDirError, UsageError
from adaptgate.gate import RunContext
from adaptgate.kvcache.gate import wanted
from adaptgate.pipeline import runner
from adaptgate.pipeline.runner import RunOptions, run_pipeline
from adaptgate.record import RunRecord, RunSettings, load_run

RUN_SHAPING = {
    "ADAPTGATE_CONVERT_TO": "bf16",
    "ADAPTGATE_KVCACHE": "fp8_e4m3",
    "ADAPTGATE_KERNEL": "numpy",
    "ADAPTGATE_VLLM_PYTHON": "/opt/vllm/bin/python",
    "ADAPTGATE_QK_RMSNORM": "1",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.setattr(runner, "GATES", {"alpha": "fake_gates:Alpha"})
    fake_gates.CALLS.clear()
    fake_gates.SCRIPT.clear()
    for name in [*RUN_SHAPING, "ADAPTGATE_DEBUG", "ADAPTGATE_CACHE_DIR"]:
        monkeypatch.delenv(name, raising=False)


def _opts(tmp_path: Path, **settings) -> RunOptions:
    return RunOptions(RunSettings(model=str(tmp_path), target="cpu", **settings), tmp_path / "run")


def test_a_run_records_the_run_shaping_variables(tmp_path, monkeypatch):
    for name, value in RUN_SHAPING.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ADAPTGATE_CACHE_DIR", str(tmp_path / "cache"))  # shapes nothing measured
    record = run_pipeline(_opts(tmp_path))
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())["settings"]
    assert on_disk["env"] == RUN_SHAPING == record.settings.env
    # the options the environment stands in for carry its values: the gates read only these
    assert on_disk["convert_to"] == "bf16" and on_disk["kv_formats"] == "fp8_e4m3"


def test_an_option_wins_over_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "bf16")
    record = run_pipeline(_opts(tmp_path, convert_to="fp16"))
    assert record.settings.convert_to == "fp16"
    assert record.settings.env == {"ADAPTGATE_CONVERT_TO": "bf16"}


def test_a_resume_with_a_different_value_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTGATE_KERNEL", "numpy")
    run_pipeline(_opts(tmp_path))
    fake_gates.CALLS.clear()
    run_pipeline(_opts(tmp_path))  # the same environment resumes
    monkeypatch.setenv("ADAPTGATE_KERNEL", "auto")
    with pytest.raises(RunDirError, match=r"other settings .*ADAPTGATE_KERNEL differ"):
        run_pipeline(_opts(tmp_path))
    monkeypatch.delenv("ADAPTGATE_KERNEL")
    with pytest.raises(RunDirError, match="ADAPTGATE_KERNEL differ"):  # unset differs too
        run_pipeline(_opts(tmp_path))


def test_a_resume_whose_variable_changes_an_option_names_both(tmp_path, monkeypatch):
    run_pipeline(_opts(tmp_path))
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "fp16")
    with pytest.raises(RunDirError, match="convert_to, ADAPTGATE_CONVERT_TO differ"):
        run_pipeline(_opts(tmp_path))


def test_a_bad_value_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "int4")
    with pytest.raises(UsageError, match="ADAPTGATE_CONVERT_TO int4: unknown target"):
        run_pipeline(_opts(tmp_path))
    assert not (tmp_path / "run").exists() and fake_gates.CALLS == []


def test_a_run_json_without_env_still_loads(tmp_path):
    record = RunRecord(run_dir=str(tmp_path), settings=RunSettings(model="m", target="cpu"))
    data = json.loads(record.to_json())
    del data["settings"]["env"]  # as adaptgate wrote it before the settings were recorded
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert load_run(tmp_path).settings.env == {}


def test_the_gates_read_the_recorded_settings_not_the_environment(
    tmp_path, monkeypatch, tiny_model
):
    model = tiny_model("qwen3")
    settings = RunSettings(model=str(model), target="cpu")
    ctx = RunContext(tmp_path, settings, RunRecord(run_dir=str(tmp_path), settings=settings))
    monkeypatch.setenv("ADAPTGATE_CONVERT_TO", "fp16")
    monkeypatch.setenv("ADAPTGATE_KVCACHE", "fp8_e4m3")
    assert wanted_targets(ctx)[0] == [] and wanted(ctx, str(model)).formats is None
    ctx.settings = settings.with_environment()
    targets, why = wanted_targets(ctx)
    assert (targets, why.text) == (["fp16"], "asked for")
    assert wanted(ctx, str(model)).formats == ["fp8_e4m3"]
