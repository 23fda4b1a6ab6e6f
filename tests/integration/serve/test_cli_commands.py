"""The plan, doctor and smoke commands through click: files written, JSON on stdout, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from adaptgate.cli.doctor import command as doctor
from adaptgate.cli.plan import command as plan
from adaptgate.cli.smoke import command as smoke

DATA = Path(__file__).parents[2] / "data"


def test_plan_writes_the_runbook_and_prints_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        plan,
        [
            "--config", str(DATA / "configs" / "Qwen3-4B-Thinking-2507-FP8.json"),
            "--target", "ascend-a2", "--device", "910b4", "--out", str(tmp_path), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "plan" and data["max_model_len"] == 65536
    assert (tmp_path / "RUNBOOK.md").is_file() and (tmp_path / "launch-node0.sh").is_file()


def test_plan_that_cannot_fit_exits_1() -> None:
    result = CliRunner().invoke(
        plan,
        [
            "--config", str(DATA / "configs" / "Qwen3-4B-Thinking-2507-FP8.json"),
            "--target", "ascend-a2", "--device", "910b4", "--max-model-len", "262144", "-q",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "does not fit" in result.stderr and "fix:" in result.stderr


def test_doctor_reads_a_file_or_stdin() -> None:
    log = DATA / "logs" / "ascend_aclinit_107001.log"
    result = CliRunner().invoke(doctor, [str(log), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["findings"][0]["id"] == "acl_init_107001"
    result = CliRunner().invoke(doctor, ["-"], input=log.read_text())
    assert result.exit_code == 0 and "VLLM_WORKER_MULTIPROC_METHOD=spawn" in result.stdout
    result = CliRunner().invoke(doctor, ["/no/such.log"])
    assert result.exit_code == 2


def test_smoke_exit_codes_follow_the_protocol_checks() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "unit" / "smoke"))
    from fake_openai import FakeConfig, FakeOpenAI, Faults

    with FakeOpenAI(FakeConfig()) as fake:
        ok = CliRunner().invoke(smoke, [fake.url, "--json", "--api-key-env", "NO_SUCH_KEY_VAR"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["protocol_verdict"] == "PASS"
    with FakeOpenAI(FakeConfig(faults=Faults(ignore_max_tokens=True))) as fake:
        bad = CliRunner().invoke(smoke, [fake.url, "-q"])
    assert bad.exit_code == 1
