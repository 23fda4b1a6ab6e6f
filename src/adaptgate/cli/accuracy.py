"""``adaptgate accuracy URL``: parse options into AccuracyOptions, call run_accuracy, render."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import emit_json, endpoint_options, handle_errors, output_options
from adaptgate.client import EndpointOptions
from adaptgate.console import Output


@click.command(
    epilog="""\b
Examples:
  adaptgate accuracy http://127.0.0.1:8000 --model demo
  adaptgate accuracy http://127.0.0.1:8001 --baseline bf16-accuracy.json --repeats 3 --json
  adaptgate accuracy http://127.0.0.1:8000 --task gsm8k --data-dir ./hf-cache --limit 200
  adaptgate accuracy http://127.0.0.1:8000 --baseline runs/bf16   # a run dir's accuracy gate
Exit code 1 when the verdict is FAIL: a drop beyond both the tolerance and the noise.
Without --baseline the verdict is INCONCLUSIVE (FAIL at accuracy 0). The network is never used."""
)
@endpoint_options
@click.option(
    "--task",
    "tasks",
    multiple=True,
    help="lm-eval task or group (repeatable) whose data is local [default: adaptgate's built-in "
    "adaptgate_basic_en and adaptgate_basic_zh].",
)
@click.option(
    "--baseline",
    type=click.Path(exists=True, path_type=Path),
    help="Accuracy result JSON, or a run directory whose accuracy gate ran, to judge against.",
)
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(1, 20))
@click.option("--limit", type=click.IntRange(min=1), help="At most this many items per task.")
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Hugging Face cache (HF_HOME layout) holding the registry tasks' data.",
)
@click.option(
    "--chat/--no-chat",
    default=True,
    show_default=True,
    help="Apply the server's chat template (/v1/chat/completions) or send raw prompts.",
)
@click.option(
    "--tolerance",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Relative accuracy drop allowed (vllm-ascend's lm-eval CI uses 0.05).",
)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", "timeout_s", default=300.0, show_default=True, type=float)
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write accuracy.json.")
@output_options
@handle_errors
def command(
    endpoint: EndpointOptions,
    tasks: tuple[str, ...],
    baseline: Path | None,
    repeats: int,
    limit: int | None,
    data_dir: Path | None,
    chat: bool,
    tolerance: float,
    concurrency: int,
    timeout_s: float,
    out_file: Path | None,
    out: Output,
) -> int:
    """Task accuracy of a served model through lm-eval, with a 95% interval, against a baseline."""
    from adaptgate.accuracy import AccuracyOptions, run_accuracy
    from adaptgate.accuracy.render import render_accuracy

    options = AccuracyOptions(
        **endpoint.model_dump(),
        baseline=baseline,
        repeats=repeats,
        limit=limit,
        data_dir=data_dir,
        chat=chat,
        tolerance=tolerance,
        concurrency=concurrency,
        timeout_s=timeout_s,
        **({"tasks": list(tasks)} if tasks else {}),
    )
    result = run_accuracy(options, out)
    if out_file is not None:
        result.write_json(out_file)
    emit_json(out, result.to_json())
    if out.human:
        render_accuracy(result, out.console())
    return result.exit_code
