"""issue 19: the sentences of the smoke, bench and accuracy gates -- check titles and reasons,
validity checks, metric definitions, verdicts -- hold no English sentence in a zh report once
built by the current code (the fixture runs hold strings of the old code)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from report_language import english_runs
from report_runs import make_run_dir

from adaptgate.accuracy.verdict import judge
from adaptgate.bench.gate import verdict
from adaptgate.bench.metrics import DEFINITIONS
from adaptgate.bench.models import BenchResult
from adaptgate.bench.validity import Check, Validity
from adaptgate.messages import catalogue, render, said
from adaptgate.report.render import write_report
from adaptgate.smoke.models import CheckResult, CheckStatus
from adaptgate.stats import METHOD_DESCRIPTIONS, METHOD_DESCRIPTIONS_ZH

AREAS = ("smoke.", "bench.", "accuracy.")
CJK = re.compile(r"[\u4e00-\u9fff]")
# the fixture runs' English these changes replace (tests/unit/report/data/
# zh_english_not_yet_catalogued.txt): gone from a zh report built by the current code
REPLACED = {
    "CPUs; other processes compete with the client",
    "TPOT of a",
    "and a local server",
    "and empty chunks do not count",
    "chunks, flattened over requests",
    "differ from token chunks seen",
    "dispatch lateness p",
    "first SSE chunk carrying a token",
    "latency: gaps between consecutive",
    "linear interpolation between closest ranks",
    "machine busy: load average",
    "ms, TPOT p",
    "output tokens from the server's usage when sent, else token chunks",
    "output tokens of successful requests",
    "per chunk, not per token; vllm bench serve's ITL",
    "per request with",
    "request counts as",
    "run: dispatch lateness p",
    "several tokens per chunk: ITL is per chunk",
    "successful requests meeting every SLO",
    "tail latencies include their interference",
    "text, content or reasoning",
    "time per output token excluding the first",
    "time to first token: sent",
    "vllm bench serve's E",
    "vllm bench serve's TPOT",
    "what vllm bench serve uses",
    "N concurrent identical greedy requests agree",
    "a Chinese question gets a",
    "a Chinese question gets a CJK answer",
    "a stop string ends the output before it",
    "a thinking model reasons, then answers",
    "chars in reasoning only",
    "chat completion returns",
    "chat completion returns text",
    "chinese, arithmetic, thinking",
    "completion endpoint returns",
    "greedy outputs are identical",
    "hours: the answer is",
    "identical outputs of",
    "is honoured with",
    "itemitem' at char",
    "lists the served model and its",
    "lists the served name",
    "no final answer",
    "no tool call in the reply",
    "of the answer's letters are CJK",
    "the budget ended inside the thinking",
    "the reply ended inside the reasoning",
    "the token budget ended inside the reasoning",
    "tool calling: JSON arguments matching the schema",
    "total; stream usage equals",
    "usage token counts are consistent",
}


def _fields(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def test_every_template_of_these_gates_reads_as_chinese_with_names_as_parameters():
    zh = {k: v for k, v in catalogue("zh").items() if k.startswith(AREAS)}
    assert {k.split(".")[0] for k in zh} == {a.rstrip(".") for a in AREAS}
    for key, template in zh.items():
        text = render(key, dict.fromkeys(_fields(template), "7"), "zh")
        assert CJK.search(text) and english_runs(text) == [], (key, text)


def test_metric_definitions_and_percentile_methods_have_both_languages():
    assert set(METHOD_DESCRIPTIONS) == set(METHOD_DESCRIPTIONS_ZH)
    for key, definition in DEFINITIONS.items():
        assert definition.zh and CJK.search(definition.zh), key
        assert english_runs(definition.in_lang("zh")) == [], key
    for text in METHOD_DESCRIPTIONS_ZH.values():
        assert CJK.search(text) and english_runs(text) == []


def _smoke_checks() -> list[dict[str, Any]]:
    """A reason of every kind the fixture's checks show, as the current checks build them."""
    checks = [
        ("models", "protocol", "PASS", said("smoke.model_listed", model="m", length=40960)),
        ("chat", "protocol", "PASS", said("smoke.chars_in_reasoning_only", chars=109)),
        ("completion", "protocol", "PASS", said("smoke.chars", chars=68)),
        (
            "stream_matches",
            "protocol",
            "PASS",
            said("smoke.stream_identical", completion=6, chat=9),
        ),
        ("concurrent_identical", "protocol", "PASS", said("smoke.outputs_identical", n=4, chars=6)),
        ("max_tokens", "protocol", "PASS", said("smoke.max_tokens_honoured", used=5)),
        (
            "stop_strings",
            "protocol",
            "PASS",
            said("smoke.stopped_before", stop="'itemitem'", at=28),
        ),
        ("usage", "protocol", "PASS", said("smoke.usage_consistent_tokenize")),
        ("chinese", "quality", "FAIL", said("smoke.cjk_low", share="27%")),
        ("arithmetic", "quality", "FAIL", said("smoke.no_answer_budget", finish="length")),
        ("thinking", "quality", "FAIL", said("smoke.no_answer_in_reasoning", finish="stop")),
        ("tool_call", "quality", "FAIL", said("smoke.no_tool_call")),
    ]
    return [
        CheckResult(
            id=cid, title=cid, category=cat, status=CheckStatus(status), reason=reason
        ).model_dump(mode="json")
        for cid, cat, status, reason in checks
    ]


def _edit(record: dict[str, Any]) -> None:
    gates = {g["name"]: g for g in record["gates"]}
    smoke = gates["smoke"]
    smoke["result"]["checks"] = _smoke_checks()
    failed = said("smoke.verdict_failed_quality", protocol="PASS", quality="FAIL",
                  failed="`chinese`, `arithmetic`, `thinking`, `tool_call`")  # fmt: skip
    smoke.update(reason=failed.text, reason_id=failed.id, reason_params=failed.params)
    bench = gates["bench"]
    checks = [
        Check(name="dispatch_lateness_p99_ms", status="invalid",
              message=said("bench.dispatch_lateness", value="157.14", limit="72.1")),
        Check(name="machine_load", status="warn",
              message=said("bench.machine_busy", load="8.1", cpus=2)),
        Check(name="token_counts", status="warn",
              message=said("bench.token_counts_differ", count=32)),
    ]  # fmt: skip
    validity = Validity(
        status="INVALID",
        reasons=[checks[0].message],
        warnings=[c.message for c in checks[1:]],
        checks=checks,
    )
    result = bench["result"]
    result.update(validity=validity.model_dump(mode="json"))
    for key in ("definitions", "percentile_method"):
        result.pop(key)  # the current defaults: both languages
    status, reason = verdict([BenchResult.model_validate(result)])
    bench.update(status=status.value, reason=reason.text, reason_id=reason.id)
    bench["reason_params"] = reason.params


def test_a_zh_report_of_these_gates_built_now_holds_none_of_their_old_english(tmp_path: Path):
    run = make_run_dir(tmp_path, edit=_edit)
    md = write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")
    left = set(english_runs(md))
    assert not left & REPLACED, sorted(left & REPLACED)
    assert "中文提问得到以中文为主的回答" in md and "没有最终回答（finish_reason stop）" in md
    assert "请求发出延迟 p99 157.14 ms（上限 72.1 ms）" in md
    assert "首 token 时延" in md and "在最近的两个秩之间线性插值" in md


def test_an_english_report_keeps_the_english_of_these_sentences(tmp_path: Path):
    run = make_run_dir(tmp_path, edit=_edit)
    md = write_report(run, formats=("md",), langs=("en",))[0].read_text(encoding="utf-8")
    assert "dispatch lateness p99 157.14 ms (limit 72.1 ms)" in md
    assert "no final answer (finish_reason stop): the reply ended inside the reasoning" in md
    assert DEFINITIONS["ttft_ms"].text in md


def test_accuracy_and_skip_reasons_render_in_chinese():
    _, reason, _ = judge([], True, None, 0.05)
    assert reason.in_lang("zh") == "没有可对比的基线"
    skipped = said("gate.serve_not_passed", status="FAIL", reason=said("bench.interrupted"))
    assert english_runs(skipped.in_lang("zh")) == []
