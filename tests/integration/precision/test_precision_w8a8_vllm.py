"""vLLM CPU serving the W8A8_DYNAMIC conversion of the tiny FP8 model in the compressed-tensors
layout (``adaptgate convert --to w8a8-dynamic --format compressed-tensors``): vLLM loads it with
its int8 scheme (oneDNN kernels, no AMX needed), answers, and the served-model check against
the CPU FP32 reference of the FP8 source passes under the quantized profile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptgate.precision.models import ServedConfig
from adaptgate.precision.served import check_served

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_vllm_serves_the_compressed_tensors_w8a8_conversion(
    vllm_server: Callable[..., Any],
    dump_of: Callable[..., Path],
    fp8_model: Path,
    tmp_path: Path,
) -> None:
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, OutputFormat, Target

    out = tmp_path / "w8a8"
    options = ConvertOptions(
        model=str(fp8_model),
        out=out,
        target=Target.W8A8_DYNAMIC,
        format=OutputFormat.COMPRESSED_TENSORS,
    )
    run_conversion(options)
    reference = dump_of(fp8_model, max_new_tokens=16)
    with vllm_server(out, tmp_path / "serve", "--max-logprobs", "20", name="tiny") as server:
        served = check_served(
            ServedConfig(url=server.url, reference=reference, model="tiny", profile="quantized")
        )
        log = server.log_text()
    assert "CompressedTensorsW8A8Int8" in log  # vLLM's int8 scheme, not a float fallback
    assert served.prompts and all(p.server_tokens > 0 and p.server_text for p in served.prompts)
    assert served.verdict == "PASS", served.reason
    print(served.to_json())  # the measured numbers, for the record (pytest -s)
