"""The served-model check against the real vLLM CPU server (``shared/docs/engine-cpu.md``).

The tiny FP8 model's CPU FP32 reference against vLLM serving it: vLLM's CPU FP8 kernels need AMX
(Sapphire Rapids or newer), so on machines without it the FP8 checkpoint is served through the
route Ascend A2/A3 take anyway, its exact bf16 conversion (``adaptgate convert --to bf16``).
A different model served under the same name must fail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptgate.precision.models import ServedConfig
from adaptgate.precision.served import check_served

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _servable(fp8_model: Path, workdir: Path) -> Path:
    if _has_amx():
        return fp8_model
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, Target

    out = workdir / "bf16"
    run_conversion(ConvertOptions(model=str(fp8_model), out=out, target=Target.BF16))
    return out


def test_vllm_serving_the_fp8_model_passes_and_another_model_fails(
    vllm_server: Callable[..., Any],
    dump_of: Callable[..., Path],
    fp8_model: Path,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
) -> None:
    reference = dump_of(fp8_model, max_new_tokens=16)
    logprobs = ("--max-logprobs", "20")
    served = _servable(fp8_model, tmp_path)
    with vllm_server(served, tmp_path / "same", *logprobs, name="tiny") as server:
        same = check_served(ServedConfig(url=server.url, reference=reference))
    assert same.verdict == "PASS", same.reason
    assert same.model == "tiny"
    other = tiny_model(arch="qwen3", format="bf16", num_layers=4, seed=7)
    with vllm_server(other, tmp_path / "other", *logprobs, name="tiny") as server:
        wrong = check_served(ServedConfig(url=server.url, reference=reference))
    assert wrong.verdict == "FAIL"
    print(same.to_json())  # the measured numbers, for the record (pytest -s)
