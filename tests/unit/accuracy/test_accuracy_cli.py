"""`adaptgate accuracy`: bad input is one line with exit 2 before any server is asked; the
baseline is a result JSON or a run directory; the table and the pipeline gate."""

from __future__ import annotations

import io
import json

import pytest
from accuracy_testlib import result, task
from rich.console import Console

from adaptgate.accuracy.baseline import load_baseline
from adaptgate.accuracy.gate import AccuracyGate
from adaptgate.accuracy.models import AccuracyResult
from adaptgate.accuracy.render import render_accuracy
from adaptgate.accuracy.verdict import judge
from adaptgate.errors import BaselineError
from adaptgate.gate import RunContext
from adaptgate.record import GateRecord, GateStatus, RunRecord, RunSettings

NO_SERVER = "http://127.0.0.1:9"  # nothing listens: these errors must come first


@pytest.mark.slow
@pytest.mark.usefixtures("lm_eval_installed")
def test_a_registry_task_without_local_data_is_one_line_exit_2(adaptgate_cli, tmp_path):
    empty = tmp_path / "hf"
    empty.mkdir()
    done = adaptgate_cli("accuracy", NO_SERVER, "--task", "gsm8k", "--data-dir", str(empty),
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("adaptgate: error:")]
    assert len(error) == 1 and "task gsm8k's data is not in" in error[0]
    assert "network is never used" in error[0] and "--data-dir" in error[0]
    done = adaptgate_cli("accuracy", NO_SERVER, "--task", "no_such_task", cwd=tmp_path)
    assert done.returncode == 2 and "lm-eval has no task 'no_such_task'" in done.stderr


def test_a_baseline_that_is_no_accuracy_result_is_exit_2(adaptgate_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    done = adaptgate_cli("accuracy", NO_SERVER, "--baseline", str(tmp_path / "empty"),
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "without run.json" in done.stderr
    (tmp_path / "other.json").write_text('{"kind": "smoke"}')
    with pytest.raises(BaselineError, match="is no accuracy result"):
        load_baseline(tmp_path / "other.json")


def test_the_baseline_may_be_a_run_directory_whose_accuracy_gate_ran(tmp_path):
    base = result(task("adaptgate_basic_en", 17, 40))
    record = RunRecord(run_dir=str(tmp_path), settings=RunSettings(model="m", target="cpu"))
    record.put(GateRecord(name="accuracy", title="Accuracy", status=GateStatus.INCONCLUSIVE,
                          reason="no baseline", result=base.model_dump(mode="json")))  # fmt: skip
    record.save(tmp_path)
    assert load_baseline(tmp_path) == base
    record.gates = []
    record.save(tmp_path)
    with pytest.raises(BaselineError, match="holds no accuracy result"):
        load_baseline(tmp_path)


def test_the_table_shows_accuracy_interval_baseline_and_verdict():
    tasks = [task("adaptgate_basic_en", 700, 1000)]
    base = result(task("adaptgate_basic_en", 800, 1000))
    verdict, reason, comparisons = judge(tasks, True, base, 0.05)
    done = result(*tasks).model_copy(
        update={"verdict": verdict, "reason": reason, "comparisons": comparisons}
    )
    console = Console(file=io.StringIO(), width=200)
    render_accuracy(done, console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    low, high = tasks[0].ci.low, tasks[0].ci.high
    assert f"0.700 [{low:.3f}, {high:.3f}]" in text and "0.800" in text and "-0.100" in text
    assert "chat template applied" in text and "verdict: FAIL - adaptgate_basic_en dropped" in text
    assert json.loads(done.to_json())["comparisons"][0]["verdict"] == "FAIL"


def _context(tmp_path, url: str | None, baseline: str | None = None) -> RunContext:
    settings = RunSettings(model="m", target="cpu", accuracy_baseline=baseline)
    record = RunRecord(run_dir=str(tmp_path), settings=settings)
    if url is not None:
        record.put(GateRecord(name="serve", title="Serve", status=GateStatus.PASS, reason="ok",
                              summary={"url": url, "served_model_name": "fake"}))  # fmt: skip
    return RunContext(run_dir=tmp_path, settings=settings, record=record)


def test_the_gate_skips_without_a_server(tmp_path):
    outcome = AccuracyGate().run(_context(tmp_path, None))
    assert outcome.status is GateStatus.SKIPPED and "serve gate did not run" in outcome.reason


@pytest.mark.slow
@pytest.mark.usefixtures("lm_eval_installed")
def test_the_gate_records_accuracy_and_judges_against_the_run_baseline(answering_server, tmp_path):
    url = answering_server()
    first = AccuracyGate().run(_context(tmp_path / "a", url))
    assert first.status is GateStatus.INCONCLUSIVE and "no baseline" in first.reason
    assert first.summary["adaptgate_basic_en_accuracy"] == 1.0
    saved = tmp_path / "a" / "accuracy" / "accuracy.json"
    assert first.artifacts == [saved] and (tmp_path / "a" / "accuracy" / "task").is_dir()
    second = AccuracyGate().run(_context(tmp_path / "b", url, baseline=str(saved)))
    assert second.status is GateStatus.PASS, second.reason
    assert isinstance(second.result, AccuracyResult) and second.result.verdict is GateStatus.PASS
