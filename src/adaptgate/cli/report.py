"""``adaptgate report``: render a run directory's report from its run.json."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adaptgate.cli._common import emit_json, handle_errors, output_options
from adaptgate.console import Output


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@output_options
@handle_errors
def command(run_dir: Path, out: Output) -> int:
    """Render RUN_DIR/REPORT.md from RUN_DIR/run.json."""
    from adaptgate.report.render import write_report

    files = write_report(run_dir)
    emit_json(out, json.dumps({"files": [str(f) for f in files]}))
    if out.human:
        for f in files:
            click.echo(f"report: {f}")
    return 0
