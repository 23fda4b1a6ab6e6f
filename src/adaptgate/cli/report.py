"""``adaptgate report``: render the report of a run directory (or compare several) from run.json."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adaptgate.cli._common import emit_json, handle_errors, output_options
from adaptgate.console import Output

EXAMPLES = """\b
Examples:
  adaptgate report runs/Qwen3-8B-FP8-ascend-a2
  adaptgate report runs/Qwen3-8B-FP8-ascend-a2 --lang zh --format html
  adaptgate report runs/qwen3-npu runs/qwen3-cpu --out reports/qwen3-npu-vs-cpu
One run: REPORT.md and REPORT.html in RUN_DIR (REPORT.zh.* with --lang zh).
Several runs of the same model: one comparison report in --out, one column per run."""


@click.command("report", epilog=EXAMPLES)
@click.argument(
    "run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "all"]),
    default="all",
    show_default=True,
    help="Markdown, one self-contained HTML file, or both.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh", "all"]),
    default="en",
    show_default=True,
    help="Report language (zh: Chinese, in the register of the seed reports).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Directory of a comparison report [default: runs/<model>-compare].",
)
@output_options
@handle_errors
def command(
    run_dirs: tuple[Path, ...], fmt: str, lang: str, out_dir: Path | None, out: Output
) -> int:
    """Render the report of RUN_DIR from its run.json; with several run directories, merge
    runs of one model on different hardware into one comparison report."""
    from adaptgate.report.render import FORMATS, write_merged, write_report

    formats = FORMATS if fmt == "all" else (fmt,)
    langs = ("en", "zh") if lang == "all" else (lang,)
    if len(run_dirs) == 1:
        if out_dir is not None:
            raise click.UsageError(
                "--out is for comparing several runs; one run's report goes into its run directory"
            )
        files = write_report(run_dirs[0], formats=formats, langs=langs)
    else:
        files = write_merged(
            list(run_dirs), out_dir or _default_out(run_dirs[0]), formats=formats, langs=langs
        )
    emit_json(out, json.dumps({"files": [str(f) for f in files]}))
    if out.human:
        for f in files:
            click.echo(f"report: {f}")
    return 0


def _default_out(first: Path) -> Path:
    from adaptgate.record import load_run

    name = Path(load_run(first).settings.model.rstrip("/")).name or "model"
    return Path("runs") / f"{name}-compare"
