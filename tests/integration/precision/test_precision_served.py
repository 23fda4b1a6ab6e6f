"""The served-model check against a fake OpenAI server answering from reference dumps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptgate.cli.precision import command as precision_command
from adaptgate.precision.models import ServedConfig
from adaptgate.precision.served import check_served, check_served_forced
from adaptgate.reference.api import ReferenceConfig
from adaptgate.reference.dump import open_dump

pytestmark = pytest.mark.slow


def test_same_numbers_pass(
    dump_of: Callable[..., Path], fp8_model: Path, fake_server: Callable[[Path], str]
) -> None:
    ref = dump_of(fp8_model)
    result = check_served(ServedConfig(url=fake_server(ref), reference=ref))
    assert result.verdict == "PASS", result.reason
    assert result.metrics.exact_match_rate == 1.0
    assert result.metrics.logprob_abs_diff_max == pytest.approx(0.0, abs=1e-6)
    assert result.metrics.topk_kl_mean == pytest.approx(0.0, abs=1e-6)
    assert result.metrics.prompt_logprobs_available
    assert result.model == "tiny"
    # what the server answered is kept for the report, per prompt
    texts = {p.id: p.server_text for p in result.prompts}
    assert texts == {p.id: p.generated_text for p in open_dump(ref).meta.prompts}
    assert any(texts.values())


def test_another_model_fails(
    dump_of: Callable[..., Path],
    tiny_model: Callable[..., Path],
    fp8_model: Path,
    fake_server: Callable[[Path], str],
) -> None:
    ref = dump_of(fp8_model)
    other = dump_of(tiny_model(arch="qwen3", format="fp8_block", num_layers=4, seed=7))
    result = check_served(ServedConfig(url=fake_server(other), reference=ref))
    assert result.verdict == "FAIL"
    assert result.metrics.exact_match_rate < 0.5
    assert result.metrics.first_mismatch_in_topk < 1.0
    failed = {c.metric for c in result.checks if not c.passed}
    assert "first_mismatch_in_topk" in failed


def test_cli(
    dump_of: Callable[..., Path], fp8_model: Path, fake_server: Callable[[Path], str]
) -> None:
    ref = dump_of(fp8_model)
    run = CliRunner().invoke(
        precision_command, [fake_server(ref), "--reference", str(ref), "--json"]
    )
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["verdict"] == "PASS"
    down = CliRunner().invoke(precision_command, ["http://127.0.0.1:9", "--reference", str(ref)])
    assert down.exit_code == 2 and "failed" in down.output


def test_another_model_fails_scored_teacher_forced(
    dump_of: Callable[..., Path],
    tiny_model: Callable[..., Path],
    fp8_model: Path,
    fake_server: Callable[[Path], str],
    prompts_file: Path,
    tmp_path: Path,
) -> None:
    """The gate's order: the server answers first, the reference scores its text in one pass."""
    other = dump_of(tiny_model(arch="qwen3", format="fp8_block", num_layers=4, seed=7))
    ref = ReferenceConfig(
        model=str(fp8_model), out=tmp_path / "ref", prompts_file=prompts_file, max_new_tokens=8
    )
    cfg = ServedConfig(url=fake_server(other), reference=ref.out)
    result, dump = check_served_forced(cfg, ref)
    assert dump.continuation == "forced" and dump.timings is not None
    assert dump.timings.passes == 1
    assert [p.generated_ids for p in dump.prompts] == [
        p.generated_ids for p in open_dump(other).meta.prompts
    ]
    assert result.metrics.teacher_forced and result.metrics.scored_positions == 3 * 8
    assert result.verdict == "FAIL"
    failed = {c.metric for c in result.checks if not c.passed}
    assert "first_mismatch_in_topk" in failed
    same, _ = check_served_forced(
        ServedConfig(url=fake_server(dump_of(fp8_model)), reference=tmp_path / "same"),
        ref.model_copy(update={"out": tmp_path / "same"}),
    )
    assert same.verdict == "PASS", same.reason
    assert same.metrics.exact_match_rate == 1.0 and same.metrics.served_rank_max == 1
