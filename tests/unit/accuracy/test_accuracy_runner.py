"""run_accuracy through the real lm-eval against a server that answers the built-in task: the
accuracy is what the server got right, and a planted drop FAILs against the clean baseline."""

from __future__ import annotations

import pytest

from adaptgate.accuracy import AccuracyOptions, run_accuracy
from adaptgate.accuracy.builtin import items
from adaptgate.accuracy.models import BUILTIN_TASKS
from adaptgate.record import GateStatus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lm_eval_installed")]


def test_accuracy_is_what_the_server_answered_right_and_a_drop_fails(answering_server, tmp_path):
    requests: list[dict] = []
    clean = run_accuracy(
        AccuracyOptions(url=answering_server(requests=requests), work_dir=tmp_path / "clean")
    )
    assert [t.task for t in clean.tasks] == list(BUILTIN_TASKS)
    assert all(t.accuracy == 1.0 and t.samples == 40 for t in clean.tasks)
    en = clean.task("adaptgate_basic_en")
    assert en is not None and en.ci.high == 1.0 and 0.9 < en.ci.low < 1.0
    assert clean.chat_template and clean.model == "fake" and clean.lm_eval_version == "0.4.13"
    assert clean.verdict is GateStatus.INCONCLUSIVE  # no baseline: recorded, not judged
    assert {r["path"] for r in requests} == {"/v1/chat/completions"}
    assert len(requests) == 80 and all(r["temperature"] == 0 for r in requests)
    baseline = clean.write_json(tmp_path / "baseline.json")

    # half the Chinese questions answered wrong: 20/40 against 40/40 is beyond tolerance and noise
    wrong = frozenset(i["question"] for i in items("zh")[::2])
    options = AccuracyOptions(
        url=answering_server(wrong), baseline=baseline, repeats=2, work_dir=tmp_path / "broken"
    )
    broken = run_accuracy(options)
    zh = broken.task("adaptgate_basic_zh")
    assert zh is not None and zh.accuracy == 0.5 and zh.repeats.count == 2
    assert zh.data_hash == clean.tasks[1].data_hash
    assert broken.verdict is GateStatus.FAIL and broken.exit_code == 1
    assert [c.verdict for c in broken.comparisons] == [GateStatus.PASS, GateStatus.FAIL]


def test_without_the_chat_template_the_completions_endpoint_is_used(answering_server, tmp_path):
    requests: list[dict] = []
    options = AccuracyOptions(
        url=answering_server(requests=requests), chat=False, limit=5, work_dir=tmp_path
    )
    result = run_accuracy(options)
    assert not result.chat_template and all(t.samples == 5 for t in result.tasks)
    assert {r["path"] for r in requests} == {"/v1/completions"}
    assert all(r["prompt"].startswith("Question: ") for r in requests)
