"""``adaptgate precision URL --reference DUMP``: the served-model check."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    emit_json,
    handle_errors,
    output_options,
    profile_option,
    served_model_option,
    thresholds_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_FAIL, EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate precision http://127.0.0.1:8000 --reference ref-cpu
  adaptgate precision http://npu-host:8000/v1 --reference ref-cpu --model qwen3-8b-fp8 --json
The API key, if any, is read from OPENAI_API_KEY."""


@click.command("precision", epilog=EXAMPLES)
@click.argument("url")
@click.option(
    "--reference",
    "reference",
    required=True,
    type=click.Path(path_type=Path),
    help="The reference dump (adaptgate reference --out DIR).",
)
@served_model_option
@thresholds_option("precision")
@profile_option
@click.option("--top-k", type=click.IntRange(1, 20), help="Logprobs per token [default: dump's].")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds per request.")
@output_options
@handle_errors
def command(
    url: str,
    reference: Path,
    model: str | None,
    thresholds_file: Path | None,
    profile: str | None,
    top_k: int | None,
    timeout: float,
    out: Output,
) -> int:
    """Send the reference prompts to an OpenAI-compatible server (greedy, top-k logprobs) and
    compare token by token with the reference. Exit 1 on FAIL."""
    from adaptgate.precision.models import ServedConfig
    from adaptgate.precision.served import check_served

    result = check_served(
        ServedConfig(
            url=url,
            reference=reference,
            model=model,
            thresholds_file=thresholds_file,
            profile=profile,
            top_k=top_k,
            timeout=timeout,
        )
    )
    emit_json(out, result.to_json())
    if out.human:
        from adaptgate.precision.render import render_served

        render_served(result, out.console())
    return EXIT_OK if result.verdict == "PASS" else EXIT_FAIL
