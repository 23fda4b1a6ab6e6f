"""The served-model check against a fake OpenAI server answering from reference dumps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptgate.cli.precision import command as precision_command
from adaptgate.precision.models import ServedConfig
from adaptgate.precision.served import check_served
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
