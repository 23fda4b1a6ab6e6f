from __future__ import annotations

import json
from pathlib import Path

import fake_gates  # the test directory is on sys.path (pytest rootdir import mode)
import pytest

from adaptgate.errors import RunDirError, UsageError
from adaptgate.pipeline import runner
from adaptgate.pipeline.runner import RunOptions, exit_code_of, run_pipeline
from adaptgate.record import GateStatus, RunSettings, load_run

REAL_ORDER = tuple(runner.GATES)  # read before the fixture swaps in the fake gates


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    gates = {n: f"fake_gates:{n.capitalize()}" for n in ("alpha", "beta", "gamma")}
    monkeypatch.setattr(runner, "GATES", gates)
    fake_gates.CALLS.clear()
    fake_gates.SCRIPT.clear()


def _opts(tmp_path: Path, **kw) -> RunOptions:
    settings = RunSettings(model=str(tmp_path), target="cpu")
    return RunOptions(settings=settings, run_dir=tmp_path / "run", **kw)


def test_all_pass_records_status_summary_artifacts(tmp_path):
    record = run_pipeline(_opts(tmp_path))
    assert [g.name for g in record.gates] == ["alpha", "beta", "gamma"]
    assert all(g.status is GateStatus.PASS for g in record.gates)
    beta = record.gate("beta")
    assert beta.summary == {"value": 1.5, "saw_alpha": True}
    assert beta.artifacts == ["beta/out.txt"]
    assert beta.seconds is not None and beta.seconds >= 0
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [g["status"] for g in on_disk["gates"]] == ["PASS"] * 3
    assert exit_code_of(record) == 0


def test_fail_gives_exit_1_and_later_gates_still_run(tmp_path):
    fake_gates.SCRIPT["beta"] = "fail"
    record = run_pipeline(_opts(tmp_path))
    assert record.gate("beta").status is GateStatus.FAIL
    assert record.gate("gamma").status is GateStatus.PASS
    assert exit_code_of(record) == 1


def test_inconclusive_is_its_own_verdict_exit_0_unless_strict(tmp_path):
    fake_gates.SCRIPT["beta"] = "inconclusive"
    record = run_pipeline(_opts(tmp_path))
    assert record.gate("beta").status is GateStatus.INCONCLUSIVE
    assert record.verdict is GateStatus.INCONCLUSIVE  # never PASS
    assert exit_code_of(record) == 0
    assert exit_code_of(record, strict=True) == 1
    fake_gates.SCRIPT["gamma"] = "fail"  # a FAIL outranks it
    record = run_pipeline(_opts(tmp_path, fresh=True))
    assert record.verdict is GateStatus.FAIL and exit_code_of(record) == 1


def test_a_run_in_which_nothing_measured_is_not_a_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(fake_gates.Alpha, "run", lambda self, ctx: fake_gates.GateOutcome.skipped(
        "no server"))  # fmt: skip
    record = run_pipeline(_opts(tmp_path, only=["alpha"]))
    assert [g.status for g in record.gates] == [GateStatus.SKIPPED] * 3
    assert record.verdict is GateStatus.SKIPPED and exit_code_of(record) == 1
    record = run_pipeline(_opts(tmp_path, fresh=True))  # one gate measured: a PASS
    assert record.verdict is GateStatus.PASS and exit_code_of(record) == 0


def test_bad_input_is_error_with_exit_2_and_one_line_reason(tmp_path):
    fake_gates.SCRIPT["alpha"] = "bad-input"
    record = run_pipeline(_opts(tmp_path))
    alpha = record.gate("alpha")
    assert alpha.status is GateStatus.ERROR
    assert alpha.reason == "config.json has no num_hidden_layers -- fix: add it"
    assert record.gate("beta").summary["saw_alpha"] is False
    assert exit_code_of(record) == 2


def test_crash_is_error_with_exit_3(tmp_path):
    fake_gates.SCRIPT["gamma"] = "crash"
    record = run_pipeline(_opts(tmp_path))
    assert record.gate("gamma").status is GateStatus.ERROR
    assert "RuntimeError: boom" in record.gate("gamma").reason
    assert exit_code_of(record) == 3


def test_resume_keeps_passed_gates_and_reruns_from_first_not_passed(tmp_path):
    fake_gates.SCRIPT["beta"] = "fail"
    run_pipeline(_opts(tmp_path))
    assert fake_gates.CALLS == ["alpha", "beta", "gamma"]
    fake_gates.CALLS.clear()
    fake_gates.SCRIPT.clear()
    record = run_pipeline(_opts(tmp_path))
    assert fake_gates.CALLS == ["beta", "gamma"]
    assert all(g.status is GateStatus.PASS for g in record.gates)
    assert load_run(tmp_path / "run").gate("beta").status is GateStatus.PASS


def test_fresh_reruns_everything(tmp_path):
    run_pipeline(_opts(tmp_path))
    fake_gates.CALLS.clear()
    run_pipeline(_opts(tmp_path, fresh=True))
    assert fake_gates.CALLS == ["alpha", "beta", "gamma"]


def test_only_and_skip(tmp_path):
    record = run_pipeline(_opts(tmp_path, only=["alpha", "gamma"], skip=["gamma"]))
    assert fake_gates.CALLS == ["alpha"]
    assert [(g.name, g.status) for g in record.gates] == [
        ("alpha", GateStatus.PASS),
        ("beta", GateStatus.SKIPPED),
        ("gamma", GateStatus.SKIPPED),
    ]
    assert record.gate("beta").reason == "not selected (--only alpha,gamma)"
    # a later run that selects them runs them: a skip is not a pass
    fake_gates.CALLS.clear()
    run_pipeline(_opts(tmp_path))
    assert fake_gates.CALLS == ["beta", "gamma"]
    with pytest.raises(UsageError, match="unknown gate 'delta'"):
        run_pipeline(_opts(tmp_path, only=["delta"]))


def test_resume_with_other_settings_is_refused(tmp_path):
    run_pipeline(_opts(tmp_path))
    (tmp_path / "other").mkdir()
    other = RunOptions(RunSettings(model=str(tmp_path / "other"), target="cpu"), tmp_path / "run")
    with pytest.raises(RunDirError, match="other settings"):
        run_pipeline(other)


def test_corrupt_run_json_is_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match="not a valid run record"):
        load_run(run_dir)


def test_live_gate_reruns_when_a_later_gate_runs_and_always_gate_every_time(tmp_path, monkeypatch):
    monkeypatch.setattr(fake_gates.Beta, "live", True)
    monkeypatch.setattr(fake_gates.Alpha, "always", True)
    fake_gates.SCRIPT["gamma"] = "fail"
    run_pipeline(_opts(tmp_path))
    fake_gates.CALLS.clear()
    fake_gates.SCRIPT.clear()
    run_pipeline(_opts(tmp_path))
    assert fake_gates.CALLS == ["alpha", "beta", "gamma"]  # beta's server is gone: served again
    fake_gates.CALLS.clear()
    run_pipeline(_opts(tmp_path))
    assert fake_gates.CALLS == ["alpha"]  # nothing after beta runs: beta is kept


def test_every_gate_that_ran_is_closed_when_the_run_ends_even_after_a_crash(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr(fake_gates._Scripted, "close", lambda self: closed.append(self.name))
    fake_gates.SCRIPT["beta"] = "crash"
    run_pipeline(_opts(tmp_path))
    assert closed == ["alpha", "beta", "gamma"]


def test_with_url_the_endpoint_gates_bring_inspect_and_serve(monkeypatch):
    from adaptgate.pipeline.runner import selected_gates

    monkeypatch.setattr(runner, "GATES", dict.fromkeys(REAL_ORDER, "unused:Gate"))
    url = "http://127.0.0.1:8000"
    assert selected_gates(["smoke", "precision"], []) == ["smoke", "precision"]
    assert selected_gates(["smoke", "precision"], [], url=url) == [
        "inspect", "serve", "smoke", "precision",
    ]  # fmt: skip
    assert selected_gates(["bench"], ["inspect"], url=url) == ["serve", "bench"]
    assert selected_gates(["convert"], [], url=url) == ["convert"]  # no endpoint gate
