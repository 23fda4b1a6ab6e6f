"""Markdown rendering of the report document (and of a run record, for callers)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.report.doc import Bullets, Code, Document, Heading, Image, Para, Table

if TYPE_CHECKING:
    from adaptgate.record import RunRecord

ASSETS = "report_assets"
TONE_PREFIX = {"alert": "> **!** ", "note": "> ", "ok": "", "plain": ""}


def md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(table: Table) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in table.header) + " |"]
    lines.append("|" + "---|" * len(table.header))
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines = [f"*{table.caption}*", "", *lines]
    return "\n".join(lines)


def image_ref(image: Image, base: Path) -> str:
    """Where the Markdown finds the PNG: the gate's file, or the report's asset file."""
    if image.source is not None:
        return Path(os.path.relpath(image.source, base)).as_posix()
    return f"{ASSETS}/{image.name}"


def to_markdown(doc: Document, base: Path) -> str:
    """``base``: the directory the Markdown file is written to (image paths are relative)."""
    parts = [f"# {doc.title}"]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            parts.append(TONE_PREFIX[block.tone] + block.text)
        elif isinstance(block, Table):
            parts.append(md_table(block))
        elif isinstance(block, Code):
            fence = "````" if "```" in block.text else "```"
            parts.append(f"{fence}{block.lang}\n{block.text}\n{fence}")
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {md_cell(i)}" for i in block.items))
        elif isinstance(block, Image):
            parts.append(f"![{block.caption}]({image_ref(block, base)})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def render_markdown(record: RunRecord, lang: str = "en") -> str:
    """The report of one run as Markdown (plots referenced under ``report_assets/``)."""
    from adaptgate.report.render import document_of

    root = Path(record.run_dir)
    return to_markdown(document_of([(record, root)], lang), root)
