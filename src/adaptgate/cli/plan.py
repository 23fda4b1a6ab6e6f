"""``adaptgate plan``: parse options into PlanOptions, call build_plan, render."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from adaptgate.cli._common import (
    config_option,
    cpu_memory_gib_option,
    device_option,
    devices_option,
    emit_json,
    gpu_memory_utilization_option,
    handle_errors,
    kv_cache_dtype_option,
    max_model_len_option,
    output_options,
    release_option,
    stage_option,
    target_option,
    vllm_ascend_src_option,
    vllm_src_option,
)
from adaptgate.console import Output
from adaptgate.serve.models import TARGETS

F = TypeVar("F", bound=Callable[..., Any])


def plan_options(fn: F) -> F:
    """The options `plan` and `serve` share; passes them as ``plan_kw`` (PlanOptions fields)."""
    decorators = [
        target_option(*TARGETS, required=True),
        release_option,
        device_option,
        devices_option,
        click.option("--nodes", type=click.IntRange(min=1), help="Default: 1, more if needed."),
        max_model_len_option(),
        click.option("--max-num-seqs", type=click.IntRange(min=1)),
        gpu_memory_utilization_option,
        kv_cache_dtype_option(),
        click.option(
            "--avg-context-tokens",
            default=2048,
            show_default=True,
            type=click.IntRange(min=16),
            help="Average context per request; sizes --max-num-seqs.",
        ),
        click.option("--route", type=click.Choice(["native", "bf16", "w8a8_dynamic"])),
        click.option("--served-model-name"),
        click.option("--served-path", help="Directory vLLM loads (default: per route)."),
        click.option("--host", help="Default 0.0.0.0 (127.0.0.1 on cpu)."),
        click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535)),
        click.option("--tools/--no-tools", default=None, help="Tool calling (default: family)."),
        click.option("--reasoning/--no-reasoning", default=None, help="Reasoning parser."),
        click.option("--mtp/--no-mtp", default=None, help="MTP speculative decoding."),
        click.option("--mtp-tokens", type=click.IntRange(1, 8)),
        click.option("--eager/--no-eager", "enforce_eager", default=None),
        click.option("--cpu-kv-cache-gib", default=1, show_default=True, type=int),
        cpu_memory_gib_option,
        click.option("--image", help="Container image (default per target and release)."),
        vllm_src_option,
        vllm_ascend_src_option,
    ]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        keys = [
            "target", "release", "device", "devices", "nodes", "max_model_len", "max_num_seqs",
            "gpu_memory_utilization", "kv_cache_dtype", "avg_context_tokens", "route",
            "served_model_name", "served_path", "host", "port", "tools", "reasoning", "mtp",
            "mtp_tokens", "enforce_eager", "cpu_kv_cache_gib", "cpu_memory_gib", "image",
            "vllm_src", "vllm_ascend_src",
        ]  # fmt: skip
        plan_kw = {k: kwargs.pop(k) for k in keys}
        return fn(*args, plan_kw=plan_kw, **kwargs)

    for deco in reversed(decorators):
        wrapper = deco(wrapper)
    return wrapper  # type: ignore[return-value]


@click.command(
    epilog="""\b
Examples:
  adaptgate plan ./Qwen3-4B-Thinking-2507-FP8 --target ascend-a2 --device 910b4
  adaptgate plan --config config.json --target ascend-a2 --device 910b3 --devices 8 --out plan/
  adaptgate plan ./GLM-4.7-FP8 --target ascend-a3 --devices 16 --json"""
)
@click.argument("model", required=False)
@config_option
@plan_options
@stage_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Write plan.json, RUNBOOK.md, deployment.yaml, launch-node<N>.sh here.",
)
@output_options
@handle_errors
def command(
    model: str | None,
    config_path: Path | None,
    plan_kw: dict[str, Any],
    stage: str,
    out_dir: Path | None,
    out: Output,
) -> int:
    """Launch plan for vLLM / vllm-ascend: layout, flags and environment with reasons,
    container, multi-node commands, MTP cost, operator table, RUNBOOK.md."""
    from adaptgate.serve.models import PlanOptions
    from adaptgate.serve.plan import build_plan
    from adaptgate.serve.runbook import render_runbook, write_plan_outputs

    options = PlanOptions.model_validate(
        {"model": model, "config_path": config_path, "stage": stage, **plan_kw}
    )
    plan = build_plan(options)
    if out_dir is not None:
        files = write_plan_outputs(plan, out_dir)
        out.status(f"wrote {', '.join(str(f) for f in files)}")
    emit_json(out, plan.to_json())
    if out.human:  # plain Markdown, never wrapped: every command stays copy-pasteable
        out.console().print(render_runbook(plan), markup=False, highlight=False, soft_wrap=True)
    return 0
