"""``adaptgate smoke URL``: parse options into SmokeOptions, call run_smoke, render."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    emit_json,
    endpoint_options,
    handle_errors,
    max_model_len_option,
    output_options,
)
from adaptgate.client import EndpointOptions
from adaptgate.console import Output


@click.command(
    epilog="""\b
Examples:
  adaptgate smoke http://127.0.0.1:8000
  adaptgate smoke http://10.0.0.5:8000 --model qwen3 --api-key-env VLLM_API_KEY --tools
  adaptgate smoke http://127.0.0.1:8000 --only chat --only stream_matches --json
  adaptgate smoke http://127.0.0.1:8000 --reference-model ./Qwen3-8B-FP8
Exit code 1 when a protocol check fails; quality checks are reported, never decide."""
)
@endpoint_options
@max_model_len_option("expected_max_model_len", "the server should report")
@click.option("--thinking/--no-thinking", default=None, help="Thinking model [default: auto].")
@click.option("--tools", is_flag=True, help="The deployment enables tool calling.")
@click.option(
    "--reference-model",
    type=click.Path(exists=True, file_okay=False),
    help="The source checkpoint: the server must render chats exactly as its chat template does.",
)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(2, 64))
@click.option("--quality-max-tokens", default=1024, show_default=True, type=click.IntRange(16))
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, type=float)
@click.option("--only", multiple=True, help="Run only this check (repeatable).")
@click.option("--skip", multiple=True, help="Skip this check (repeatable).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write smoke.json.")
@output_options
@handle_errors
def command(
    endpoint: EndpointOptions,
    expected_max_model_len: int | None,
    thinking: bool | None,
    tools: bool,
    reference_model: str | None,
    concurrency: int,
    quality_max_tokens: int,
    timeout_s: float,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    out_file: Path | None,
    out: Output,
) -> int:
    """Functional checks of a served endpoint: protocol (PASS decides) and model quality."""
    from adaptgate.smoke import SmokeOptions, run_smoke
    from adaptgate.smoke.render import render_smoke

    options = SmokeOptions(
        **endpoint.model_dump(),
        expected_max_model_len=expected_max_model_len,
        thinking=thinking,
        tools=tools,
        reference_model=reference_model,
        concurrency=concurrency,
        quality_max_tokens=quality_max_tokens,
        timeout_s=timeout_s,
        only=list(only),
        skip=list(skip),
    )
    result = run_smoke(options, Output(json=True) if not out.human else out)
    if out_file is not None:
        result.write_json(out_file)
    emit_json(out, result.to_json())
    if out.human:
        render_smoke(result, out.console())
    return result.exit_code
