"""issue 19: the sentences the precision gate records -- its verdict, each comparison's reason,
the layer a failure is localized to, why the served check did not run (the serve gate's own
reason nested in it) -- render in the zh report with no English left. Results are built by
today's code on dumps of the tiny models and put into the fixture runs (which hold the strings
the earlier code wrote). A failed limit's source renders as the threshold file's source_zh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from report_language import english_runs
from report_runs import make_run_dir

from adaptgate.client import Completion
from adaptgate.gate import RunContext
from adaptgate.messages import Message, Said, message
from adaptgate.precision.compare import compare_dumps
from adaptgate.precision.gate import _reason, _served_url
from adaptgate.precision.models import (
    CompareResult,
    PrecisionGateResult,
    ServedConfig,
    ServedResult,
)
from adaptgate.precision.served import Served, compare_served
from adaptgate.precision.thresholds import limit_failed
from adaptgate.record import GateStatus, RunRecord
from adaptgate.reference.api import ReferenceConfig, build_reference
from adaptgate.reference.dump import gen_key, open_dump
from adaptgate.report.render import write_report

TOP_K = 5


@pytest.fixture(scope="module")
def dumps(tiny_model: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The CPU references of the tiny BF16 model and its FP8 twin, 4 greedy tokens a prompt."""
    out = []
    for fmt in ("bf16", "fp8_block"):
        path = tmp_path_factory.mktemp("dump") / fmt
        build_reference(
            ReferenceConfig(model=str(tiny_model(format=fmt)), out=path, max_new_tokens=4)
        )
        out.append(path)
    return out


def _served(dump: Path, shift: float) -> ServedResult:
    """A server answering with the dump's own tokens, its logprobs moved by ``shift`` nats."""
    reader = open_dump(dump)
    completions = []
    for k, p in enumerate(reader.meta.prompts):
        lp = torch.log_softmax(reader.tensor(gen_key(k, "logits")).double(), -1)
        tokens = p.generated_ids
        completions.append(
            Completion(
                tokens=[f"token_id:{t}" for t in tokens],
                token_logprobs=[float(lp[i, t]) + shift for i, t in enumerate(tokens)],
                top_logprobs=[
                    {f"token_id:{int(j)}": float(lp[i, j]) for j in lp[i].topk(TOP_K).indices}
                    for i in range(len(tokens))
                ],
            )
        )
    cfg = ServedConfig(url="http://fake", reference=dump)
    return compare_served(cfg, reader, Served("model", TOP_K, completions))


def _failed(pair: CompareResult | ServedResult) -> list[Said]:
    """The sentences of the pair's failed limits (the report lists each)."""
    return [limit_failed(c).said for c in pair.checks if not c.passed]


def _said(reason: Message | Said) -> Said:
    return reason.said if isinstance(reason, Message) else reason


def _put(record: dict[str, Any], name: str, reason: Message, result: Any = None) -> None:
    gate = next(g for g in record["gates"] if g["name"] == name)
    said = _said(reason)
    gate.update(reason=said.text, reason_id=said.id, reason_params=said.params)
    if result is not None:
        gate["result"] = result.model_dump(mode="json")


def _zh_lines(tmp_path: Path, source: str, edit: Callable[[dict[str, Any]], None]) -> list[str]:
    """The zh report's lines of the precision gate: its stage rows and its section."""
    run = make_run_dir(tmp_path, source=source, edit=edit)
    md = write_report(run, formats=("md",), langs=("zh",))[0].read_text(encoding="utf-8")
    lines = md.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("## ") and "精度验证" in line)
    last = next(i for i, line in enumerate(lines[first + 1 :], first + 1) if line.startswith("## "))
    return lines[first:last] + [line for line in lines if line.startswith("| 精度")]


def _english_left(lines: list[str], sentences: list[Said]) -> list[str]:
    """English runs in ``lines`` that come from ``sentences``."""
    runs = {r for line in lines for r in english_runs(line)}
    return sorted(r for r in runs if any(r in s.text for s in sentences))


def test_conversion_and_served_verdicts_render_in_chinese(tmp_path: Path, dumps: list[Path]):
    failed = compare_dumps(dumps[0], dumps[1], profile="device")  # FP8 noise: no device match
    passed = _served(dumps[0], 0.0)
    assert failed.verdict == "FAIL" and failed.localization.criterion is not None
    assert passed.verdict == "PASS"
    assert passed.reason.text.endswith("tokens match; all 4 checks within device thresholds")
    reference = open_dump(dumps[0]).meta
    result = PrecisionGateResult(reference=reference, conversion=failed, served=passed)
    reason = _reason(result)
    assert reason.text.startswith("conversion FAIL: error appears at ")

    def edit(record: dict[str, Any]) -> None:
        _put(record, "precision", reason, result)

    lines = _zh_lines(tmp_path, "run_cpu_bf16.json", edit)
    sentences = [_said(reason), failed.reason, passed.reason, failed.localization.criterion]
    sentences += _failed(failed)
    assert any("转换精度未通过：误差出现在" in line for line in lines)
    assert any("服务端精度通过：" in line for line in lines)
    assert _english_left(lines, sentences) == []
    # what the lines were before: the same sentences in English
    assert _english_left([s.text for s in sentences], sentences)


def test_served_failures_and_a_passed_conversion_render_in_chinese(
    tmp_path: Path, dumps: list[Path]
):
    passed = compare_dumps(dumps[0], dumps[1], profile="quantized")
    failed = _served(dumps[0], 1.0)  # every logprob a nat off: mean and max fail
    assert passed.verdict == "PASS" and failed.verdict == "FAIL"
    assert passed.reason.text == f"all {len(passed.checks)} checks within quantized thresholds"
    assert failed.reason.id == "precision.both"  # the first two failed limits
    result = PrecisionGateResult(
        reference=open_dump(dumps[0]).meta, conversion=passed, served=failed
    )
    reason = _reason(result)

    def edit(record: dict[str, Any]) -> None:
        _put(record, "precision", reason, result)

    lines = _zh_lines(tmp_path, "run_cpu_bf16.json", edit)
    assert any("（要求 <= 0.05；依据：adaptgate：一致 token 上" in line for line in lines)
    sentences = [_said(reason), passed.reason, failed.reason, *_failed(failed)]
    assert _english_left(lines, sentences) == []
    assert _english_left([s.text for s in sentences], sentences)


@pytest.mark.parametrize("serve", ["missing", "failed"])
def test_no_server_renders_with_the_serve_gates_own_reason(
    tmp_path: Path, dumps: list[Path], serve: str
):
    """The served check's skip quotes the serve gate's reason as its message (Stage A's
    failure), so it renders in Chinese too."""
    serve_reason = message("serve.stage", stage="Stage A", reason=message("serve.engine_failed"))
    source = "run_cpu.json"

    def edit(record: dict[str, Any]) -> None:
        if serve == "missing":
            record["gates"] = [g for g in record["gates"] if g["name"] != "serve"]
        else:
            _put(record, "serve", serve_reason)

    probe = make_run_dir(tmp_path, "probe", edit, source)
    run_record = RunRecord.model_validate_json((probe / "run.json").read_text("utf-8"))
    ctx = RunContext(run_dir=probe, settings=run_record.settings, record=run_record)
    url, _, why = _served_url(ctx)
    assert url is None
    if serve == "failed":
        assert run_record.gate("serve").status is GateStatus.FAIL  # type: ignore[union-attr]
        assert "(FAIL: Stage A: vLLM's engine failed to start" in why.text
    result = PrecisionGateResult(reference=open_dump(dumps[0]).meta, served_skipped=why.said)
    reason = _reason(result)
    assert reason.text == f"served-model check skipped: {why.text}"

    def put(record: dict[str, Any]) -> None:
        edit(record)
        _put(record, "precision", reason, result)

    lines = _zh_lines(tmp_path, source, put)
    assert any(line.startswith("> 服务端精度检查未执行: ") for line in lines)
    sentences = [_said(reason), why.said]
    assert _english_left(lines, sentences) == []
    assert _english_left([s.text for s in sentences], sentences)
