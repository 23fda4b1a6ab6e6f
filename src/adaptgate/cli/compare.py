"""``adaptgate compare DUMP_A DUMP_B``: tensor-by-tensor comparison with a verdict."""

from __future__ import annotations

from pathlib import Path

import click

from adaptgate.cli._common import (
    emit_json,
    handle_errors,
    output_options,
    profile_option,
    thresholds_option,
)
from adaptgate.console import Output
from adaptgate.errors import EXIT_FAIL, EXIT_OK

EXAMPLES = """\b
Examples:
  adaptgate compare ref-cpu ref-npu
  adaptgate compare ref-fp8 ref-w8a8 --profile quantized --plot depth.png
  adaptgate compare ref-cpu ref-npu --thresholds my-thresholds.yaml --json > compare.json
DUMP_A is the golden one: relative errors are relative to it."""


@click.command("compare", epilog=EXAMPLES)
@click.argument("dump_a", type=click.Path(path_type=Path))
@click.argument("dump_b", type=click.Path(path_type=Path))
@thresholds_option("precision")
@profile_option
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    help="Write the error-vs-depth plot (PNG) here.",
)
@click.option(
    "--save",
    "save_path",
    type=click.Path(path_type=Path),
    help="Also write the result JSON to this file.",
)
@output_options
@handle_errors
def command(
    dump_a: Path,
    dump_b: Path,
    thresholds_file: Path | None,
    profile: str | None,
    plot_path: Path | None,
    save_path: Path | None,
    out: Output,
) -> int:
    """Compare two reference dumps (same prompts, same tokenizer): metrics per tensor, PASS/FAIL,
    and the layer where the error appears. Exit 1 on FAIL, 2 for dumps that do not match."""
    from adaptgate.precision.compare import compare_dumps

    result = compare_dumps(
        dump_a, dump_b, thresholds_file=thresholds_file, profile=profile, plot_path=plot_path
    )
    if save_path is not None:
        result.write_json(save_path)
    emit_json(out, result.to_json())
    if out.human:
        from adaptgate.precision.render import render_compare

        render_compare(result, out.console())
    return EXIT_OK if result.verdict == "PASS" else EXIT_FAIL
