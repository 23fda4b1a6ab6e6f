"""``adaptgate doctor LOG``: the known failure signatures in a vLLM / vllm-ascend log.
``adaptgate doctor --host``: preflight of this Ascend host for a launch plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from adaptgate.cli._common import (
    config_option,
    device_option,
    devices_option,
    emit_json,
    gpu_memory_utilization_option,
    handle_errors,
    max_model_len_option,
    output_options,
    release_option,
    target_option,
)
from adaptgate.console import Output

STATUS_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "red", "SKIPPED": "dim"}


@click.command(
    epilog="""\b
Examples:
  adaptgate doctor runs/serve/tiny-real/vllm.log
  kubectl logs vllm-0 | adaptgate doctor -
  adaptgate doctor vllm.log --json
  adaptgate doctor --host --target ascend-a2 --device 910b3 --devices 8 --release 0.18.0
  adaptgate doctor --host --config GLM-4.7-FP8/config.json --target ascend-a2 --devices 8
Every option but --json and --quiet goes with --host (the launch to check the host for).
Exit codes with --host: 0 the host is ready, 1 a check failed or one the launch needs could
not run (SKIPPED, with the reason), 2 bad input."""
)
@click.argument("log", required=False, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--host", "host", is_flag=True, help="Check this Ascend host instead of a log.")
@click.option("--model", help="--host: plan from this checkpoint directory.")
@config_option
@target_option("ascend-a2", "ascend-a3")
@device_option
@devices_option
@release_option
@gpu_memory_utilization_option
@max_model_len_option()
@output_options
@handle_errors
def command(log: Path | None, host: bool, out: Output, **host_kw: Any) -> int:
    """Match a server log against the failure knowledge base (cause and fix for each hit), or
    with --host check this NPU host (devices, HBM, CANN, driver, links) for a launch."""
    from adaptgate.errors import UsageError

    if host == (log is not None):
        raise UsageError(
            "give a LOG to diagnose or --host (one of them)",
            fix="adaptgate doctor vllm.log, or adaptgate doctor --host --target ascend-a2",
        )
    if host:
        return _host(out, host_kw)
    from adaptgate.serve.doctor import diagnose, diagnose_file

    assert log is not None
    diagnosis = diagnose(sys.stdin.read(), log="-") if str(log) == "-" else diagnose_file(log)
    emit_json(out, diagnosis.to_json())
    if out.human:
        console = out.console()
        if not diagnosis.findings:
            console.print(diagnosis.summary(), markup=False)
        for f in diagnosis.findings:
            console.print(f"[bold]{f.title}[/] ({f.id}, line {f.line}, {f.hits} hit(s))")
            console.print(f"  cause: {f.cause}", markup=False)
            console.print(f"  fix:   {f.fix}", markup=False)
            for line in f.evidence:
                console.print(f"  > {line}", markup=False)
    return 0


def _host(out: Output, kw: dict[str, Any]) -> int:
    from adaptgate.errors import UsageError
    from adaptgate.serve.host import HostOptions, check_host

    if kw["target"] is None:
        raise UsageError("--host needs --target", fix="add --target ascend-a2 or ascend-a3")
    report = check_host(HostOptions.model_validate(kw))
    emit_json(out, report.to_json())
    if out.human:
        from rich.text import Text

        console = out.console()
        n = report.needs
        head = Text("host preflight", style="bold")
        head.append(
            f" for {n.devices} x {n.device} on this node ({n.nodes} node(s)), "
            f"--gpu-memory-utilization {n.utilization}, vllm-ascend {n.release or '?'} "
            f"({n.release_from})" + (f", plan of {n.plan_of}" if n.plan_of else ""),
            style="",
        )
        console.print(head, soft_wrap=True)
        for c in report.checks:
            line = Text(f"{c.status:7} ", style=STATUS_STYLE[c.status])
            line.append(c.title, style="bold")
            line.append(f": {c.found}", style="")
            console.print(line, soft_wrap=True)
            if c.status != "PASS" and c.needed != "-":
                console.print(Text(f"        needed: {c.needed}"), soft_wrap=True)
            if c.fix:
                console.print(Text(f"        fix:    {c.fix}"), soft_wrap=True)
        console.print(Text(report.summary(), style="bold"), soft_wrap=True)
    return 0 if report.verdict == "PASS" else 1
