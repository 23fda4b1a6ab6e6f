"""vLLM CPU serving the W8A8_DYNAMIC conversion of the tiny FP8 model in the compressed-tensors
layout (``adaptgate convert --to w8a8-dynamic --format compressed-tensors``): vLLM loads it with
its int8 scheme (oneDNN kernels, no AMX needed), answers, and the served-model check against
the CPU FP32 reference of the FP8 source passes under the quantized profile -- and fails (exit 1)
when one layer's scales are scrambled (issue 16's planted W8A8 fault)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptgate.errors import EXIT_FAIL, EXIT_OK
from adaptgate.precision.models import ServedResult

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _served(
    model: Path,
    reference: Path,
    vllm_server: Callable[..., Any],
    cli: Callable[..., Any],
    cwd: Path,
) -> tuple[int, ServedResult, str]:
    """``adaptgate precision URL --profile quantized --json`` on ``model`` served by vLLM CPU:
    the exit code, the result and the server log."""
    with vllm_server(model, cwd, "--max-logprobs", "20", name="tiny") as server:
        done = cli(
            "precision", server.url, "--reference", str(reference), "--model", "tiny",
            "--profile", "quantized", "--json", cwd=cwd,
        )  # fmt: skip
        log = server.log_text()
    assert done.returncode in (EXIT_OK, EXIT_FAIL), done.stderr[-3000:]
    print(done.stdout)  # the measured numbers, for the record (pytest -s)
    return done.returncode, ServedResult.model_validate_json(done.stdout), log


def test_vllm_serves_the_compressed_tensors_w8a8_conversion(
    vllm_server: Callable[..., Any],
    adaptgate_cli: Callable[..., Any],
    dump_of: Callable[..., Path],
    fp8_model: Path,
    w8a8_ct_model: Path,
    tmp_path: Path,
) -> None:
    reference = dump_of(fp8_model, max_new_tokens=16)
    code, served, log = _served(w8a8_ct_model, reference, vllm_server, adaptgate_cli, tmp_path)
    assert "CompressedTensorsW8A8Int8" in log  # vLLM's int8 scheme, not a float fallback
    assert served.prompts and all(p.server_tokens > 0 and p.server_text for p in served.prompts)
    assert served.verdict == "PASS" and code == EXIT_OK, served.reason


def test_scrambled_w8a8_scales_fail_the_served_check(
    vllm_server: Callable[..., Any],
    adaptgate_cli: Callable[..., Any],
    dump_of: Callable[..., Path],
    fp8_model: Path,
    scrambled_w8a8_model: Path,
    tmp_path: Path,
) -> None:
    reference = dump_of(fp8_model, max_new_tokens=16)
    code, served, log = _served(
        scrambled_w8a8_model, reference, vllm_server, adaptgate_cli, tmp_path
    )
    assert "CompressedTensorsW8A8Int8" in log  # served as int8: the fault is in the numbers
    assert served.prompts and all(p.server_tokens > 0 for p in served.prompts)
    assert served.verdict == "FAIL" and code == EXIT_FAIL, served.reason
    # measured: every prompt's first differing token is outside the reference's top-k, greedy
    # exact match 6% (clean 62%); top-k KL 0.026 (clean 0.00003) stays under the quantized
    # profile's 0.05, so the top-k check is what fails
    failed = {c.metric for c in served.checks if not c.passed}
    assert "first_mismatch_in_topk" in failed, failed
    assert served.metrics.exact_match_rate < 0.5, served.metrics
