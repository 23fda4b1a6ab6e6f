"""`run --url URL --server-log LOG`: the server's own facts (/version, /v1/models, versions and
launch arguments from its log) and the flags it runs with that differ from the plan, on recorded
logs (tests/data/serverlog, sources in its README) and a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adaptgate.errors import LogNotFound
from adaptgate.serve.logfacts import REDACTED, parse_args, parse_log, split_top
from adaptgate.serve.models import LaunchPlan, PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.server_facts import compare_flags, probe, server_facts

DATA = Path(__file__).parents[2] / "data"
LOGS = DATA / "serverlog"
CPU_LOG = DATA / "logs" / "clean_startup.log"  # a real vLLM CPU 0.32.0 startup


class FakeServer:
    """/version and /v1/models as vLLM serves them; ``key`` makes both require that Bearer."""

    def __init__(self, version: str | None, models: list[dict[str, Any]], key: str | None = None):
        self.seen_auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                fake.seen_auth.append(self.headers.get("Authorization"))
                if key and self.headers.get("Authorization") != f"Bearer {key}":
                    status, body = 401, {"error": "Unauthorized"}
                elif self.path == "/v1/models":
                    status, body = 200, {"object": "list", "data": models}
                elif self.path == "/version" and version:
                    status, body = 200, {"version": version}
                else:
                    status, body = 404, {"detail": "Not Found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def ascend_plan() -> LaunchPlan:
    """The runbook's plan for Qwen3-8B on one 910B3 (vllm-ascend's default release)."""
    return build_plan(
        PlanOptions(
            config_path=DATA / "configs" / "Qwen3-8B.json",
            target="ascend-a2",
            device="910b3",
            served_model_name="Qwen3-VL-8B",
            max_model_len=14000,
        )
    )


@pytest.fixture
def server() -> Iterator[FakeServer]:
    models = [{"id": "Qwen3-VL-8B", "object": "model", "max_model_len": 14000, "root": "/m"}]
    with FakeServer("0.11.0rc3", models) as fake:
        yield fake


# --- the log ---------------------------------------------------------------------------------


def test_a_real_vllm_cpu_log_gives_version_and_launch_arguments() -> None:
    facts = parse_log(CPU_LOG.read_text())
    assert facts.vllm_version == "0.32.0" and facts.found_in["vllm_version"] == "engine start line"
    assert facts.vllm_ascend_version is None
    assert facts.launch_args_kind == "non-default args"
    assert facts.launch_args == {
        "enable_auto_tool_choice": True, "tool_call_parser": "hermes", "host": "127.0.0.1",
        "port": 18011, "model": "/tmp/sg/bf16", "max_model_len": 4096, "enforce_eager": True,
        "served_model_name": ["tiny"], "reasoning_parser": "qwen3",
    }  # fmt: skip
    assert facts.engine_config["max_seq_len"] == "4096"


def test_a_vllm_ascend_log_gives_both_versions_and_the_platform() -> None:
    facts = parse_log((LOGS / "vllm_ascend_0.11.0rc3.log").read_text())
    assert (facts.vllm_version, facts.vllm_ascend_version) == ("0.11.0rc3", "0.11.0rc0")
    assert facts.found_in == {
        "vllm_version": "engine start line",
        "vllm_ascend_version": "pip list output",
    }
    assert facts.platform == "ascend"
    assert facts.launch_args and facts.launch_args["tensor_parallel_size"] == 2
    assert facts.engine_config["device_config"] == "npu"
    assert facts.engine_config["served_model_name"] == "Qwen3-VL-8B"
    assert facts.kv_cache_tokens == [400640]


def test_an_api_key_in_the_launch_arguments_is_never_kept() -> None:
    facts = parse_log((LOGS / "vllm_api_key.log").read_text())
    assert facts.vllm_version == "0.11.0" and facts.platform == "cuda"
    assert facts.launch_args and facts.launch_args["api_key"] == REDACTED
    assert "sk123" not in facts.model_dump_json()
    # names that merely contain "token" are not secrets
    args = parse_args("{'max_num_batched_tokens': 8192, 'hf_token': 'hf_x', 'tokenizer': 't'}")
    assert args == {"max_num_batched_tokens": 8192, "hf_token": REDACTED, "tokenizer": "t"}


def test_arguments_that_are_not_literals_are_kept_as_text() -> None:
    facts = parse_log((LOGS / "vllm_lora_args.log").read_text())
    args = facts.launch_args or {}
    assert args["max_model_len"] == 8192 and args["enable_lora"] is True
    assert str(args["lora_modules"]).startswith("[LoRAModulePath(name=")
    assert split_top("a=1, b=[2, 3], c='x, y', d=F(e=1, f=2)") == [
        "a=1", "b=[2, 3]", "c='x, y'", "d=F(e=1, f=2)",
    ]  # fmt: skip


def test_an_old_namespace_line_is_read_as_every_argument() -> None:
    text = (
        "INFO 06-03 14:53:47 api_server.py:913] args: Namespace(subparser='serve', "
        "model_tag='/data/LLMs/Qwen2.5-1.5B-Instruct', host=None, port=8000, api_key=None, "
        "max_model_len=None, tensor_parallel_size=1, config_format=<ConfigFormat.AUTO: 'auto'>)"
    )  # the format of vllm-project/vllm-ascend#1047
    facts = parse_log(text)
    assert facts.launch_args_kind == "namespace"
    args = facts.launch_args or {}
    assert args["port"] == 8000 and args["tensor_parallel_size"] == 1
    assert args["max_model_len"] is None and args["api_key"] is None  # nothing to hide
    assert args["config_format"] == "<ConfigFormat.AUTO: 'auto'>"


# --- against the plan ------------------------------------------------------------------------


def test_the_ascend_servers_flags_against_the_plan(ascend_plan: LaunchPlan) -> None:
    facts = parse_log((LOGS / "vllm_ascend_0.11.0rc3.log").read_text())
    diffs, unverified = compare_flags(ascend_plan, facts)
    by_flag = {d.flag: d for d in diffs}
    # the plan runs graph mode; the server was launched eager
    eager = by_flag["--enforce-eager"]
    assert (eager.kind, eager.plan, eager.server) == ("extra", None, "True")
    assert by_flag["--dtype"].kind == "extra" and by_flag["--dtype"].server == "float16"
    tp = by_flag["--tensor-parallel-size"]
    assert (tp.kind, tp.plan, tp.server) == ("differs", "1", "2")
    assert by_flag["--async-scheduling"].kind == "not-passed"  # a switch of the plan
    assert by_flag["--async-scheduling"].plan == "set"
    # what the plan asks for and the server's launch did not pass
    gmu = ascend_plan.flag("--gpu-memory-utilization")
    assert gmu is not None and by_flag["--gpu-memory-utilization"].kind == "not-passed"
    assert by_flag["--gpu-memory-utilization"].plan == gmu.value
    # the same max_model_len and served name: no finding
    assert "--max-model-len" not in by_flag and "--served-model-name" not in by_flag
    assert "--port" not in by_flag and "--host" not in by_flag and "--model" not in by_flag
    assert all(d.plan != d.server for d in diffs)
    assert isinstance(unverified, list)


def test_a_plan_value_the_server_changed_is_a_difference(ascend_plan: LaunchPlan) -> None:
    text = (LOGS / "vllm_ascend_0.11.0rc3.log").read_text().replace("14000", "8192")
    by_flag = {d.flag: d for d in compare_flags(ascend_plan, parse_log(text))[0]}
    assert by_flag["--max-model-len"].kind == "differs"
    assert (by_flag["--max-model-len"].plan, by_flag["--max-model-len"].server) == (
        "14000", "8192",
    )  # fmt: skip


def test_server_facts_read_version_models_and_log(server: FakeServer, ascend_plan) -> None:  # type: ignore[no-untyped-def]
    facts, why = server_facts(server.url, ascend_plan, LOGS / "vllm_ascend_0.11.0rc3.log")
    assert why is None
    assert facts.version == "0.11.0rc3" and facts.served and facts.served.id == "Qwen3-VL-8B"
    assert facts.served.max_model_len == 14000 and facts.models[0].root == "/m"
    assert facts.log_facts and facts.log_facts.vllm_ascend_version == "0.11.0rc0"
    kinds = {d.flag: d.kind for d in facts.differences}
    # vllm-ascend 0.11.0rc0 / vLLM 0.11 against the plan's release
    assert kinds["vllm-ascend version"] == "version" and kinds["vLLM version"] == "version"
    assert kinds["--enforce-eager"] == "extra"


def test_a_server_serving_another_model_or_length_is_named(ascend_plan) -> None:  # type: ignore[no-untyped-def]
    models = [{"id": "other", "max_model_len": 4096}]
    with FakeServer(None, models) as fake:
        facts, why = server_facts(fake.url, ascend_plan)
    assert why is None and facts.version is None  # a server without /version
    by_flag = {d.flag: d for d in facts.differences}
    assert by_flag["--served-model-name"].kind == "model"
    assert by_flag["--max-model-len"].server == "4096" and by_flag["--max-model-len"].source == (
        "/v1/models"
    )


def test_the_api_key_is_sent_and_never_recorded(
    ascend_plan: LaunchPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [{"id": "Qwen3-VL-8B", "max_model_len": 14000}]
    with FakeServer("0.18.0", models, key="s3cret-key") as fake:
        _, _, why = probe(fake.url)
        assert why == "HTTP 401 from /v1/models"
        monkeypatch.setenv("OPENAI_API_KEY", "s3cret-key")
        facts, why = server_facts(fake.url, ascend_plan)
    assert why is None and facts.version == "0.18.0"
    assert "Bearer s3cret-key" in fake.seen_auth
    assert "s3cret" not in facts.model_dump_json()


def test_nothing_answering_is_a_reason_and_a_missing_log_is_bad_input(
    server: FakeServer, ascend_plan: LaunchPlan, tmp_path: Path
) -> None:
    facts, why = server_facts("http://127.0.0.1:9", ascend_plan)
    assert why == "no answer from /v1/models" and facts.served is None
    with pytest.raises(LogNotFound):
        server_facts(server.url, ascend_plan, tmp_path / "no.log")


def test_run_refuses_a_server_log_without_url(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adaptgate.cli.run import command as run

    log = CPU_LOG
    args = [str(tmp_path), "--target", "cpu", "--server-log", str(log)]
    result = CliRunner().invoke(run, [*args, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--url" in result.output and "fix:" in result.output
    assert not (tmp_path / "run").exists()
