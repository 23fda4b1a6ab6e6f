"""The environment section of a --url run describes the measured server (its /version, its log's
vLLM / vllm-ascend versions and platform, /v1/models), not adaptgate's host, and lists the flags
it runs with that differ from the plan -- in both languages, every number from run.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from report_provenance import allowed_tokens, html_text, markdown_numbers, tokens

from adaptgate.report.render import write_report
from adaptgate.serve.logfacts import parse_log
from adaptgate.serve.models import LaunchPlan
from adaptgate.serve.server_facts import (
    ServedModel,
    ServerDifference,
    ServerFacts,
    compare_flags,
)

LOG = Path(__file__).parents[2] / "data" / "serverlog" / "vllm_ascend_0.11.0rc3.log"
URL = "http://10.0.0.5:22333"


def external(record: dict[str, Any]) -> None:
    """Make the run one that measured a vllm-ascend server through --url with --server-log."""
    record["settings"].update(url=URL, server_log="/var/log/vllm-ascend/server.log")
    serve = next(g for g in record["gates"] if g["name"] == "serve")
    plan = LaunchPlan.model_validate(serve["result"]["plan"])
    log = parse_log(LOG.read_text())
    flags, unverified = compare_flags(plan, log)
    served = ServedModel(id="Qwen3-VL-8B", max_model_len=14000)
    facts = ServerFacts(
        url=URL,
        version="0.11.0rc3",
        models=[served],
        served=served,
        log="/var/log/vllm-ascend/server.log",
        log_facts=log,
        differences=[
            ServerDifference(
                flag="vllm-ascend version",
                kind="version",
                plan=plan.release,
                server="0.11.0rc0",
                source="server log: pip list output",
            ),
            *flags,
        ],
        unverified=unverified,
    )
    serve["result"]["server"] = json.loads(facts.model_dump_json())
    serve["result"]["stage_a"] = serve["result"]["stage_b"] = None


def section(md: str, title: str) -> str:
    """The Markdown of one ``## N. title`` section."""
    lines = md.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("## ") and x.endswith(title))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_url_runs_environment_is_the_servers(make_run, lang: str) -> None:  # type: ignore[no-untyped-def]
    run = make_run("url-run", external)
    md_file, html_file = write_report(run, langs=(lang,))
    md = md_file.read_text()
    env = section(md, {"en": "Environment", "zh": "验证环境"}[lang])
    assert "0.11.0rc0" in env and "ascend" in env and "Qwen3-VL-8B" in env and URL in env
    assert "`--enforce-eager`" in env and "`--tensor-parallel-size`" in env
    label = {"en": "vllm-ascend (server log)", "zh": "vllm-ascend(服务端日志)"}[lang]
    note = {"en": "launched elsewhere (--url)", "zh": "在别处启动的服务"}[lang]
    assert label in md and note in md
    # adaptgate's own machine is not described as the server: no host package rows
    assert "2.13.0+cpu" not in env and "5.19.0" not in env
    record = json.loads((run / "run.json").read_text())
    allowed = allowed_tokens(record) | tokens(str(run))
    assert not markdown_numbers(md) - allowed
    assert not tokens(html_text(html_file.read_text())) - allowed


def test_a_local_run_still_describes_adaptgates_host(full_run) -> None:  # type: ignore[no-untyped-def]
    md = section(
        write_report(full_run, formats=("md",), langs=("en",))[0].read_text(), "Environment"
    )
    assert "2.13.0+cpu" in md and "vllm-ascend (server log)" not in md
    assert "launched elsewhere" not in md
