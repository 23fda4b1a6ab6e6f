"""`adaptgate doctor`: every log excerpt in tests/data/logs gets its signature, first."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adaptgate.errors import LogNotFound
from adaptgate.serve.doctor import diagnose, diagnose_file, signatures, tail

LOGS = Path(__file__).parents[2] / "data" / "logs"
EXPECTED: dict[str, str | None] = yaml.safe_load((LOGS / "expected.yaml").read_text("utf-8"))


def test_every_log_excerpt_has_an_expectation() -> None:
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_doctor_identifies_the_signature(name: str) -> None:
    diagnosis = diagnose_file(LOGS / name)
    want = EXPECTED[name]
    if want is None:
        assert diagnosis.verdict == "clean"
        assert diagnosis.findings == []
        return
    assert diagnosis.verdict == "diagnosed"
    top = diagnosis.findings[0]
    assert top.id == want, [f.id for f in diagnosis.findings]
    assert top.cause.text and top.fix.text
    for text in (top.fix.text, top.fix.in_lang("zh")):  # all filled, in both languages
        assert "{" not in text.replace("{{", "").replace('{"', ""), text
    # the evidence quotes the matching line of the log
    line = (LOGS / name).read_text().splitlines()[top.line - 1]
    assert top.evidence[0].startswith(f"{top.line}: ")
    assert line[:40] in top.evidence[0]


def test_generic_symptoms_hide_behind_a_specific_cause() -> None:
    ids = [f.id for f in diagnose_file(LOGS / "cpu_fp8_no_amx.log").findings]
    assert ids == ["cpu_fp8_needs_amx"]  # not also worker_failed / engine_core_failed


def test_kv_too_small_fix_names_the_length_that_fits() -> None:
    finding = diagnose_file(LOGS / "cpu_kv_too_small.log").findings[0]
    # vLLM estimated 1,048,448 tokens; the fix rounds down to a 128-token block
    assert "--max-model-len 1048448" in finding.fix.text
    finding = diagnose_file(LOGS / "gpu_kv_too_small.log").findings[0]
    assert "--max-model-len 44544" in finding.fix.text


def test_fp8_on_npu_points_to_the_convert_route() -> None:
    top = diagnose_file(LOGS / "ascend_fp8_not_supported.log").findings[0]
    assert "adaptgate convert" in top.fix.text and "w8a8-dynamic" in top.fix.text
    assert "'fp8'" in top.cause.text


def test_aclinit_fix_is_spawn() -> None:
    top = diagnose_file(LOGS / "ascend_aclinit_107001.log").findings[0]
    assert "VLLM_WORKER_MULTIPROC_METHOD=spawn" in top.fix.text


def test_oom_at_profiling_uses_the_plan_hints() -> None:
    text = (LOGS / "ascend_oom_profile.log").read_text()
    top = diagnose(text, hints={"smaller_len": 16384, "max_num_batched_tokens": 32768}).findings[0]
    assert top.id == "oom_at_profiling"
    assert "--max-model-len 16384" in top.fix.text
    assert "32768-token" in top.cause.text


def test_unknown_failure_points_at_the_first_error() -> None:
    text = (
        "INFO starting\nTraceback (most recent call last):\nZeroDivisionError: division by zero\n"
    )
    diagnosis = diagnose(text)
    assert diagnosis.verdict == "unrecognized"
    assert diagnosis.first_error == "ZeroDivisionError: division by zero"
    assert "first error" in diagnosis.summary()


def test_every_signature_is_exercised_or_documented() -> None:
    covered = {v for v in EXPECTED.values() if v}
    # signatures without a log excerpt here are covered by the named unit tests above or are
    # variants whose patterns are checked inline below
    inline = {
        "quantization_not_supported": "ascend quantization is currently not supported in cuda.",
        "trust_remote_code": "ValueError: The repository for x requires you to execute the "
        "configuration file in that repo on your local machine.",
        "missing_index_files": "RuntimeError: Cannot find any model weights with `/m`",
        "no_kv_memory": "ValueError: No available memory for the cache blocks. Try increasing",
        "oom_generic": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "npu_device_busy": "RuntimeError: ... NPU function error: SetDevice, error code is 507033",
        "vllm_console_script": "importlib.metadata.PackageNotFoundError: No package metadata "
        "was found for vllm",
        "torchvision_nms": "RuntimeError: operator torchvision::nms does not exist",
        "worker_failed": "(Worker pid=1) ERROR [multiproc_executor.py:953] WorkerProc failed to "
        "start.",
    }
    for sig_id, line in inline.items():
        assert diagnose(line).findings[0].id == sig_id, sig_id
    assert {s.id for s in signatures()} == covered | set(inline)


def test_missing_log_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(LogNotFound) as info:
        diagnose_file(tmp_path / "nope.log")
    assert info.value.exit_code == 2


def test_tail_strips_ansi() -> None:
    assert tail("a\n\x1b[31mred\x1b[0m\n", 1) == "red"
