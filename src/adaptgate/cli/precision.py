"""``adaptgate precision URL --reference DUMP``: the served-model check."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    dtype_option,
    emit_json,
    handle_errors,
    max_memory_option,
    output_options,
    profile_option,
    prompts_option,
    served_model_option,
    thresholds_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_FAIL, EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate precision http://127.0.0.1:8000 --reference ref-cpu
  adaptgate precision http://npu-host:8000/v1 --reference ref-cpu --model qwen3-8b-fp8 --json
  adaptgate precision http://127.0.0.1:8000 --source ./Qwen3-8B-FP8 --reference ref-forced
The API key, if any, is read from OPENAI_API_KEY."""


@click.command("precision", epilog=EXAMPLES)
@click.argument("url")
@click.option(
    "--reference",
    "reference",
    required=True,
    type=click.Path(path_type=Path),
    help="The reference dump (adaptgate reference --out DIR); written here with --source.",
)
@click.option(
    "--source",
    help="Score the server's continuation under this checkpoint's reference, teacher-forced in "
    "one pass (every position judged in the same context); writes the dump to --reference.",
)
@prompts_option
@click.option(
    "--max-new-tokens",
    default=32,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --source: tokens the server generates per prompt.",
)
@dtype_option
@max_memory_option
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
    source: str | None,
    prompts_file: Path | None,
    max_new_tokens: int,
    dtype: str,
    max_memory: int | None,
    model: str | None,
    thresholds_file: Path | None,
    profile: str | None,
    top_k: int | None,
    timeout: float,
    out: Output,
) -> int:
    """Send the reference prompts to an OpenAI-compatible server (greedy, top-k logprobs) and
    judge its continuation under the reference, position by position. Exit 1 on FAIL."""
    from adaptgate.precision.models import ServedConfig
    from adaptgate.precision.served import check_served, check_served_forced
    from adaptgate.reference.api import ReferenceConfig

    cfg = ServedConfig(
        url=url,
        reference=reference,
        model=model,
        thresholds_file=thresholds_file,
        profile=profile,
        top_k=top_k,
        timeout=timeout,
    )
    if source is None:
        result = check_served(cfg)
    else:
        ref = ReferenceConfig(
            model=source,
            out=reference,
            dtype=dtype,
            prompts_file=prompts_file,
            max_new_tokens=max_new_tokens,
            max_memory=max_memory,
        )
        result, _dump = check_served_forced(cfg, ref)
    emit_json(out, result.to_json())
    if out.human:
        from adaptgate.precision.render import render_served

        render_served(result, out.console())
    return EXIT_OK if result.verdict == "PASS" else EXIT_FAIL
