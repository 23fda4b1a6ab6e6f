"""``adaptgate serve``: parse options into ServeOptions, call serve_model, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adaptgate.cli._common import (
    cpu_list_option,
    emit_json,
    handle_errors,
    output_options,
    stage_option,
)
from adaptgate.cli.plan import plan_options
from adaptgate.console import Output


@click.command(
    epilog="""\b
Examples:
  adaptgate serve ./tiny-qwen3 --target cpu --stage dummy
  adaptgate serve ./tiny-qwen3 --target cpu --smoke --vllm-python /opt/vllm/bin/python
  adaptgate serve ./Qwen3-8B --target ascend-a2 --device 910b4 --hold --port 8000
Environment: ADAPTGATE_VLLM_PYTHON names the python that has vllm (default: this one)."""
)
@click.argument("model")
@plan_options
@stage_option
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    help="Where vllm.log and serve.json go [default: runs/serve/<name>-<stage>].",
)
@click.option("--vllm-python", help="Python with vllm installed [env: ADAPTGATE_VLLM_PYTHON].")
@click.option("--ready-timeout", type=click.FloatRange(min=1), help="Seconds to wait for ready.")
@click.option("--hold", is_flag=True, help="Keep serving until Ctrl-C / SIGTERM.")
@click.option("--smoke", is_flag=True, help="Run the smoke checks once it serves.")
@cpu_list_option(
    "--cpus",
    "Pin every vLLM process to these CPUs, keeping the rest free for a benchmark client on the "
    "same host",
)
@output_options
@handle_errors
def command(
    model: str,
    plan_kw: dict[str, Any],
    stage: str,
    run_dir: Path | None,
    vllm_python: str | None,
    ready_timeout: float | None,
    hold: bool,
    smoke: bool,
    cpus: list[int] | None,
    out: Output,
) -> int:
    """Start vLLM from the plan, wait until it serves, record startup time and KV capacity
    against the prediction, stop it cleanly (no engine process is ever left behind)."""
    from adaptgate.errors import UsageError
    from adaptgate.serve.api import serve_model
    from adaptgate.serve.cpus import usable_cpus
    from adaptgate.serve.models import PlanOptions, ServeOptions
    from adaptgate.serve.plan import served_name

    pinned = tuple(cpus) if cpus is not None else None
    if pinned is not None and not set(pinned) <= set(usable_cpus()):
        raise UsageError(
            f"--cpus {','.join(map(str, pinned))}: this process may only use CPUs {usable_cpus()}",
            fix="pick CPUs from that list",
        )

    plan_options_ = PlanOptions.model_validate({"model": model, "stage": stage, **plan_kw})
    name = served_name(plan_options_)
    options = ServeOptions(
        plan=plan_options_,
        run_dir=run_dir or Path("runs") / "serve" / f"{name}-{stage}",
        vllm_python=vllm_python,
        ready_timeout_s=ready_timeout,
        hold=hold,
        smoke=smoke,
        cpus=pinned,
    )
    result, _ = serve_model(options, out)
    emit_json(out, result.to_json())
    if out.human:
        _render(result, out)
    return result.exit_code


def _render(result: Any, out: Output) -> None:
    console = out.console()
    console.print(f"[bold]{result.verdict}[/] {result.reason}")
    console.print(f"log: {result.log}")
    if result.kv_cache_tokens_reported is not None:
        console.print(
            f"KV cache: {result.kv_cache_tokens_reported:,} tokens reported, "
            f"{result.kv_cache_tokens_predicted or 0:,} predicted (ratio {result.kv_ratio})"
        )
    if result.diagnosis and result.diagnosis.top:
        top = result.diagnosis.top
        console.print(f"[red]diagnosis[/]: {top.title}\n  cause: {top.cause}\n  fix: {top.fix}")
        for line in top.evidence:
            console.print(f"  {line}", markup=False)
    if result.log_tail and result.verdict == "FAIL":
        console.print("last log lines:", style="dim")
        console.print(result.log_tail, markup=False, style="dim")
