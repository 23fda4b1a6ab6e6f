"""``adaptgate convert MODEL OUT --to bf16|fp16|w8a8-dynamic [--format ...]``."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import emit_json, handle_errors, output_options, target_option
from adaptgate.console import Output
from adaptgate.errors import EXIT_FAIL, EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate convert ./Qwen3-4B-Thinking-2507-FP8 ./Qwen3-4B-BF16 --to bf16
  adaptgate convert ./GLM-4.7-FP8 ./GLM-4.7-W8A8 --to w8a8-dynamic --max-shard-size 4GB --verify
  adaptgate convert ./Qwen3-8B-FP8 ./Qwen3-8B-W8A8 --to w8a8-dynamic --format compressed-tensors
Rerun the same command after an interruption: finished shards are reused."""


@click.command("convert", epilog=EXAMPLES)
@click.argument("model")
@click.argument("out_dir", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--to",
    required=True,
    type=click.Choice(["bf16", "fp16", "w8a8-dynamic"]),
    help="bf16/fp16: exact dequantization; w8a8-dynamic: int8 per-channel weights, int8 "
    "per-token dynamic activations (Ascend's W8A8_DYNAMIC).",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "modelslim", "compressed-tensors"]),
    help="Layout of a w8a8-dynamic output: modelslim (vllm-ascend --quantization ascend) or "
    "compressed-tensors (vLLM on CPU/CUDA; vllm-ascend detects it too). auto: "
    "compressed-tensors for --target cpu/cuda, else modelslim.",
)
@target_option()
@click.option("--max-shard-size", default="5GB", show_default=True, help="Largest output shard.")
@click.option(
    "--workers", type=click.IntRange(min=1), help="Worker threads [default: 2 x CPUs, 2 to 4]."
)
@click.option("--verify", is_flag=True, help="Re-read the output and check every tensor.")
@click.option("--no-source-hash", is_flag=True, help="Skip the sha256 of the source files.")
@output_options
@handle_errors
def command(
    model: str,
    out_dir: Path,
    to: str,
    fmt: str,
    target: str | None,
    max_shard_size: str,
    workers: int | None,
    verify: bool,
    no_source_hash: bool,
    out: Output,
) -> int:
    """Convert the FP8 checkpoint MODEL into OUT (written as OUT.partial, renamed when done)."""
    from adaptgate.convert.engine import run_conversion
    from adaptgate.convert.models import ConvertOptions, OutputFormat, Target, parse_size

    kind = Target(to)
    options = ConvertOptions(
        model=model,
        out=out_dir,
        target=kind,
        format=OutputFormat.default(kind, target) if fmt == "auto" else OutputFormat(fmt),
        max_shard_size=parse_size(max_shard_size),
        workers=workers,
        verify=verify,
        hash_sources=not no_source_hash,
    )
    result = run_conversion(options, out)
    emit_json(out, result.to_json())
    if out.human:
        from adaptgate.convert.render import render

        render(result, out.console())
    failed = result.verify is not None and not result.verify.ok
    return EXIT_FAIL if failed else EXIT_OK
