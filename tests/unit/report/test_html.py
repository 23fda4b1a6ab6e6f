"""The HTML report is one self-contained file: CSS inline, plots as data URIs, nothing fetched."""

from __future__ import annotations

import base64
import re

from adaptgate.report.render import write_report


def test_html_is_self_contained_with_plots_embedded(full_run):
    html = write_report(full_run, formats=("html",), langs=("zh",))[0]
    assert html.name == "REPORT.zh.html"
    text = html.read_text()
    assert text.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in text
    assert "<style>" in text and "<link" not in text and "<script" not in text
    # every reference is inside the document: no http(s), no file paths
    refs = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs)
    images = [r for r in refs if r.startswith("data:")]
    # the gate-timing plot, and the PNGs the precision and bench gates wrote
    assert len(images) >= 4
    for uri in images:
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<span class="badge pass">通过</span>' in text
    assert not (full_run / "report_assets").exists()  # HTML only: no side files


def test_markdown_plots_are_files_beside_it(full_run):
    md = write_report(full_run, formats=("md",))[0].read_text()
    assert "![Time per gate in this run" in md
    assert (full_run / "report_assets" / "gate_timing.png").read_bytes()[:4] == b"\x89PNG"


def test_inline_marks_are_escaped_then_rendered(full_run):
    from adaptgate.report.html import inline

    assert inline("**a** <b> `x<y`") == "<strong>a</strong> &lt;b&gt; <code>x&lt;y</code>"
