"""The options several commands share: one meaning each, and the old spellings kept for one
release as hidden aliases that print one deprecation line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from adaptgate.cli._common import handle_errors, renamed_option
from adaptgate.errors import UsageError
from adaptgate.record import KV_CACHE_DTYPES, RunRecord, RunSettings


def _renamed_command(seen: list[str]) -> click.Command:
    @click.command()
    @click.option("--new", default="fallback")
    @renamed_option("--old", "--new", "new")
    @handle_errors
    def cmd(new: str) -> int:
        seen.append(new)
        return 0

    return cmd


def test_an_old_spelling_reaches_the_new_option_after_one_warning() -> None:
    seen: list[str] = []
    res = CliRunner().invoke(_renamed_command(seen), ["--old", "x"])
    assert res.exit_code == 0 and seen == ["x"]
    assert res.stderr.splitlines() == ["adaptgate: warning: --old is deprecated; use --new"]
    res = CliRunner().invoke(_renamed_command(seen), ["--new", "y"])
    assert res.exit_code == 0 and seen[-1] == "y" and res.stderr == ""
    res = CliRunner().invoke(_renamed_command(seen), [])
    assert res.exit_code == 0 and seen[-1] == "fallback" and res.stderr == ""
    res = CliRunner().invoke(_renamed_command(seen), ["--old", "x", "--new", "y"])
    assert res.exit_code == 2 and "give only --new" in res.stderr and len(seen) == 3
    assert "--old" not in CliRunner().invoke(_renamed_command(seen), ["--help"]).output


@pytest.fixture
def run_settings(monkeypatch: pytest.MonkeyPatch) -> list[RunSettings]:
    """The RunSettings `adaptgate run` builds, with the pipeline stopped before it starts."""
    from adaptgate.pipeline import runner

    seen: list[RunSettings] = []

    def stop(opts: Any, _out: Any) -> None:
        seen.append(opts.settings)
        raise UsageError("stopped by the test", fix="none")

    monkeypatch.setattr(runner, "run_pipeline", stop)
    return seen


def _run(tmp_path: Path, *args: str) -> Any:
    from adaptgate.cli.run import command

    return CliRunner().invoke(command, [str(tmp_path), "--target", "cpu", *args])


def test_run_kv_cache_dtype_pins_the_launch_dtype(tmp_path: Path, run_settings: list[Any]) -> None:
    res = _run(tmp_path, "--kv-cache-dtype", "fp8_e4m3")
    assert "stopped by the test" in res.stderr and "deprecated" not in res.stderr
    assert run_settings[-1].kv_cache_dtype == "fp8_e4m3" and run_settings[-1].kv_formats is None
    res = _run(tmp_path, "--kv-formats", "all")
    assert "deprecated" not in res.stderr
    assert run_settings[-1].kv_cache_dtype is None and run_settings[-1].kv_formats == "all"


def test_run_kv_cache_dtype_with_formats_is_the_old_kv_formats(
    tmp_path: Path, run_settings: list[Any]
) -> None:
    """The Makefile's demo once wrote ``--kv-cache-dtype fp8_e4m3,fp8_e5m2``: still tested."""
    res = _run(tmp_path, "--kv-cache-dtype", "fp8_e4m3,fp8_e5m2")
    assert res.stderr.splitlines()[0] == (
        "adaptgate: warning: --kv-cache-dtype fp8_e4m3,fp8_e5m2 (formats to test) is deprecated; "
        "use --kv-formats fp8_e4m3,fp8_e5m2"
    )
    assert res.stderr.count("deprecated") == 1
    settings = run_settings[-1]
    assert settings.kv_cache_dtype is None and settings.kv_formats == "fp8_e4m3,fp8_e5m2"
    _run(tmp_path, "--kv-cache-dtype", "int8_c8")  # a format, not a launch dtype
    assert run_settings[-1].kv_formats == "int8_c8" and run_settings[-1].kv_cache_dtype is None
    res = _run(tmp_path, "--kv-cache-dtype", "fp8_e4m3,fp8_e5m2", "--kv-formats", "int8_c8")
    assert res.exit_code == 2 and len(run_settings) == 2
    assert (
        "adaptgate: error: --kv-cache-dtype fp8_e4m3,fp8_e5m2 names formats to test" in res.stderr
    )


def test_inspect_plan_and_run_take_the_same_kv_cache_dtypes() -> None:
    from adaptgate.cli.inspect import command as inspect
    from adaptgate.cli.plan import command as plan
    from adaptgate.cli.run import command as run

    for command in (inspect, plan, run):
        text = CliRunner().invoke(command, ["--help"]).output
        assert "--kv-cache-dtype [" + "|".join(KV_CACHE_DTYPES) + "]" in text
        assert "KV-cache dtype the server launches with" in " ".join(text.split())


def test_reference_device_is_now_torch_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adaptgate.cli.reference import command
    from adaptgate.reference import api

    devices: list[str] = []

    def stop(cfg: Any, **_kw: Any) -> None:
        devices.append(cfg.device)
        raise UsageError("stopped by the test", fix="none")

    monkeypatch.setattr(api, "build_reference", stop)
    args = [str(tmp_path), "--out", str(tmp_path / "ref")]
    res = CliRunner().invoke(command, [*args, "--device", "npu"])
    assert res.stderr.splitlines()[0] == (
        "adaptgate: warning: --device is deprecated; use --torch-device"
    )
    res = CliRunner().invoke(command, [*args, "--torch-device", "cuda:1"])
    assert "deprecated" not in res.stderr and devices == ["npu", "cuda:1"]
    assert "--device" not in CliRunner().invoke(command, ["--help"]).output.replace(
        "--torch-device", ""
    )


def test_run_json_that_kept_formats_in_kv_cache_dtype_still_reads() -> None:
    def settings(**kw: str) -> RunSettings:
        return RunSettings.model_validate({"model": "m", "target": "cpu", **kw})

    old = settings(kv_cache_dtype="fp8_e4m3,fp8_e5m2")
    assert old.kv_formats == "fp8_e4m3,fp8_e5m2" and old.kv_cache_dtype is None
    assert settings(kv_cache_dtype="all").kv_formats == "all"
    assert settings(kv_cache_dtype="fp8").kv_cache_dtype == "fp8"  # one dtype: launches with it
    new = settings(kv_cache_dtype="fp8_e5m2", kv_formats="fp8_e4m3")
    assert (new.kv_cache_dtype, new.kv_formats) == ("fp8_e5m2", "fp8_e4m3")


def test_reproduce_command_spells_the_formats_kv_formats() -> None:
    from adaptgate.report.sections.reproduce import reproduce_command

    settings = RunSettings(model="m", target="cpu", kv_formats="fp8_e4m3,fp8_e5m2")
    line = reproduce_command(RunRecord(run_dir="runs/m", settings=settings))
    assert line == "adaptgate run m --target cpu --kv-formats fp8_e4m3,fp8_e5m2 --run-dir runs/m"
    settings = RunSettings(
        model="m", target="cpu", kv_formats="fp8", env={"ADAPTGATE_KVCACHE": "fp8"}
    )
    line = reproduce_command(RunRecord(run_dir="runs/m", settings=settings))
    assert (
        line
        == "ADAPTGATE_KVCACHE=fp8 adaptgate run m --target cpu --kv-formats fp8 --run-dir runs/m"
    )
