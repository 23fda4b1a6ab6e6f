"""Write the report files: Markdown and one self-contained HTML, per language, from run.json.

One run: ``RUN_DIR/REPORT.md`` and ``RUN_DIR/REPORT.html`` (``REPORT.zh.md``, ``REPORT.zh.html``
in Chinese), plots the report draws under ``RUN_DIR/report_assets/`` for the Markdown (the HTML
embeds them). Several runs of one model: the same files in ``--out``, one column per run.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from adaptgate.errors import UsageError
from adaptgate.record import RunRecord, load_run
from adaptgate.report.doc import Document
from adaptgate.report.i18n import LANGS, Labels
from adaptgate.report.markdown import ASSETS, to_markdown
from adaptgate.report.view import check_same_model, views
from adaptgate.results import write_text_atomic

FORMATS = ("md", "html")
REPORT_MD = "REPORT.md"


def report_name(fmt: str, lang: str) -> str:
    return f"REPORT.{fmt}" if lang == "en" else f"REPORT.{lang}.{fmt}"


def document_of(
    runs: Sequence[tuple[RunRecord, Path]], lang: str, report_command: str | None = None
) -> Document:
    from adaptgate.report.build import build_document

    if report_command is None:
        dirs = [str(root) for _, root in runs]
        report_command = shlex.join(["adaptgate", "report", *dirs, "--lang", lang])
    return build_document(views(list(runs)), lang, report_command)


def _write(doc: Document, out_dir: Path, formats: Sequence[str], lang: str) -> list[Path]:
    from adaptgate.report.html import HtmlRenderer

    files: list[Path] = []
    if "md" in formats:
        for image in doc.images:
            if image.source is None:
                path = out_dir / ASSETS / image.name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(image.data)
        path = out_dir / report_name("md", lang)
        write_text_atomic(path, to_markdown(doc, out_dir))
        files.append(path)
    if "html" in formats:
        t = Labels(lang)
        statuses = {
            t.status(s): s
            for s in (
                "PASS",
                "FAIL",
                "SKIPPED",
                "ERROR",
                "INCONCLUSIVE",
                "SAFE",
                "RISKY",
                "UNSAFE",
                "VALID",
                "INVALID",
            )
        }
        path = out_dir / report_name("html", lang)
        write_text_atomic(path, HtmlRenderer(statuses).render(doc, t("toc")))
        files.append(path)
    return files


def _check(formats: Sequence[str], langs: Sequence[str]) -> None:
    for fmt in formats:
        if fmt not in FORMATS:
            raise UsageError(f"unknown report format {fmt!r}", fix="use md, html or all")
    for lang in langs:
        if lang not in LANGS:
            raise UsageError(f"unknown report language {lang!r}", fix="use en or zh")


def write_report(
    run_dir: Path,
    record: RunRecord | None = None,
    *,
    formats: Sequence[str] = FORMATS,
    langs: Sequence[str] = ("en",),
) -> list[Path]:
    """Render ``run_dir/run.json`` (or ``record``) into report files; returns the files written."""
    _check(formats, langs)
    record = record or load_run(run_dir)
    files: list[Path] = []
    for lang in langs:
        doc = document_of([(record, run_dir)], lang)
        files += _write(doc, run_dir, formats, lang)
    return files


def write_merged(
    run_dirs: Sequence[Path],
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    langs: Sequence[str] = ("en",),
) -> list[Path]:
    """One comparison report of runs of the same model (e.g. an NPU run and a CPU run)."""
    _check(formats, langs)
    records = [load_run(d) for d in run_dirs]
    check_same_model(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for lang in langs:
        command = shlex.join(
            ["adaptgate", "report", *map(str, run_dirs), "--out", str(out_dir), "--lang", lang]
        )
        doc = document_of(list(zip(records, run_dirs, strict=True)), lang, command)
        files += _write(doc, out_dir, formats, lang)
    return files
