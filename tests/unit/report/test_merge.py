"""Runs of one model on different hardware merge into one report; other models are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adaptgate.errors import UsageError
from adaptgate.report.render import write_merged


def _cpu(record):
    record["settings"].update(target="cpu", device=None)
    record["host"]["hostname"] = "cpu-box"
    for gate in record["gates"]:
        if gate["name"] == "bench":
            gate["result"]["metrics"]["request_throughput"] = 0.4242


def test_merge_has_one_column_per_run(make_run, tmp_path):
    npu, cpu = make_run("npu"), make_run("cpu", _cpu)
    files = write_merged([npu, cpu], tmp_path / "cmp", langs=("en",))
    md = files[0].read_text()
    assert "| Gate | ascend-a2 910b4 | cpu |" in md
    assert "| Item | ascend-a2 910b4 | cpu |" in md  # model specification, side by side
    assert "ascend-a2 910b4, whole run" in md and "cpu, whole run" in md
    row = next(line for line in md.splitlines() if line.startswith("| request_throughput |"))
    assert "0.42 req/s" in row and row.count("req/s") == 4  # whole + steady per run
    assert "adaptgate report " + str(npu) in md  # the command that renders it again
    # a plot comparing the runs is drawn from run.json, and its file is written
    assert "![Latency distribution" in md
    assert (tmp_path / "cmp" / "report_assets" / "bench_latency.png").stat().st_size > 1000


def test_merge_refuses_runs_of_different_models(make_run, tmp_path):
    def other(record):
        for gate in record["gates"]:
            if gate["name"] == "inspect":
                gate["result"]["params"]["total"] += 1

    with pytest.raises(UsageError, match="different models"):
        write_merged([make_run("a"), make_run("b", other)], tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()


def test_cli_refuses_mismatched_runs_with_one_line_and_exit_2(make_run, tmp_path):
    def other(record):
        record["settings"]["model"] = "/models/GLM-4.5-tiny"
        record["gates"] = [g for g in record["gates"] if g["name"] != "inspect"]

    a, b = make_run("a"), make_run("b", other)
    env = {k: v for k, v in os.environ.items() if k != "ADAPTGATE_DEBUG"}
    done = subprocess.run(
        [sys.executable, "-c", "from adaptgate.cli.report import command; command()",
         str(a), str(b), "--out", str(tmp_path / "cmp")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("adaptgate: error: runs of different models cannot be merged")


def test_merge_of_an_npu_run_and_a_real_cpu_run(full_run, cpu_run, tmp_path):
    md = write_merged([full_run, cpu_run], tmp_path / "cmp", langs=("zh",))[0].read_text()
    assert "| 验证阶段 | ascend-a2 910b4 | cpu |" in md
    assert "| 服务启动 | 通过 (85.3 s) | **失败** (164.8 s) |" in md
    assert "ascend-a2 910b4: 总体结论" in md and "cpu: 总体结论: **失败**" in md
    # the KV-cache formats of both runs, each in its own column
    header = next(
        line for line in md.splitlines() if line.startswith("| 指标 | ascend-a2 910b4: fp8")
    )
    assert header == (
        "| 指标 | ascend-a2 910b4: fp8_e4m3 | ascend-a2 910b4: int8_c8 | cpu: fp8_e4m3 "
        "| cpu: fp8_e5m2 |"
    )
