"""Write the report files of a run directory."""

from __future__ import annotations

from pathlib import Path

from adaptgate.pipeline.record import RunRecord, load_run
from adaptgate.report.markdown import render_markdown
from adaptgate.results import write_text_atomic

REPORT_MD = "REPORT.md"


def write_report(run_dir: Path, record: RunRecord | None = None) -> list[Path]:
    """Render run.json of ``run_dir`` into ``run_dir/REPORT.md``; returns the files written."""
    record = record or load_run(run_dir)
    path = run_dir / REPORT_MD
    write_text_atomic(path, render_markdown(record))
    return [path]
