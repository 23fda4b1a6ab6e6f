"""One self-contained HTML file: CSS inline, plots as base64 PNG data URIs, nothing fetched."""

from __future__ import annotations

import base64
import re
from html import escape

from adaptgate.report.doc import Block, Bullets, Code, Document, Heading, Para, Table

STATUS_CLASS = {
    "PASS": "pass", "SAFE": "pass", "VALID": "pass",
    "FAIL": "fail", "ERROR": "fail", "UNSAFE": "fail", "INVALID": "fail",
    "SKIPPED": "skip", "RISKY": "warn", "INCONCLUSIVE": "warn",
}  # fmt: skip

CSS = """
:root { --fg:#1a202c; --muted:#4a5568; --line:#e2e8f0; --bg:#f7fafc; --accent:#2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.55;
  font: 15px/1.55 -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC",
  "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; border-bottom: 3px solid var(--accent); padding-bottom: 8px; }
h2 { font-size: 20px; margin-top: 36px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 24px; color: var(--muted); }
nav { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; }
nav ul { margin: 4px 0; padding-left: 4px; list-style: none; columns: 2; }
nav a { color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: 14px; width: auto; max-width: 100%; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
tr:nth-child(even) td { background: #fcfdfe; }
caption { caption-side: top; text-align: left; color: var(--muted); font-style: italic;
  padding-bottom: 4px; }
td { overflow-wrap: anywhere; }
code { font-family: "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 13px; background: var(--bg); padding: 1px 4px; border-radius: 3px; }
pre { background: #1a202c; color: #e2e8f0; padding: 12px 16px; border-radius: 6px;
  overflow-x: auto; }
pre code { background: none; color: inherit; padding: 0; }
.alert { border-left: 4px solid #e53e3e; background: #fff5f5; padding: 8px 12px; }
.ok { border-left: 4px solid #38a169; background: #f0fff4; padding: 8px 12px; }
.note { border-left: 4px solid #a0aec0; background: var(--bg); padding: 8px 12px;
  color: var(--muted); }
th, td:first-child, td.nw { white-space: nowrap; }
.badge { white-space: nowrap; display: inline-block; padding: 0 8px; border-radius: 10px;
  font-weight: 600; font-size: 12px; }
.badge.pass { background: #c6f6d5; color: #22543d; }
.badge.fail { background: #fed7d7; color: #822727; }
.badge.skip { background: #e2e8f0; color: #2d3748; }
.badge.warn { background: #feebc8; color: #7b341e; }
figure { margin: 16px 0; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
"""

_STRONG = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> str:
    """Escape, then the two inline marks: **strong** and `code`."""
    out = []
    for i, piece in enumerate(_CODE.split(str(text))):
        if i % 2:
            out.append(f"<code>{escape(piece)}</code>")
        else:
            out.append(_STRONG.sub(r"<strong>\1</strong>", escape(piece)))
    return "".join(out)


SHORT = 16


def _nowrap(cell: str) -> str:
    """Short one-word cells (statuses, numbers, names) never break inside."""
    return ' class="nw"' if len(cell) <= SHORT and " " not in cell.strip() else ""


class HtmlRenderer:
    def __init__(self, statuses: dict[str, str]) -> None:
        """``statuses``: a status as the report writes it (in its language) -> its code."""
        self.badges = {
            label: STATUS_CLASS[code] for label, code in statuses.items() if code in STATUS_CLASS
        }

    def cell(self, text: str) -> str:
        bare = text.replace("**", "").strip()
        head = bare.split(" (")[0]
        if head in self.badges:
            rest = bare[len(head) :]
            return f'<span class="badge {self.badges[head]}">{escape(head)}</span>{inline(rest)}'
        return inline(text)

    def table(self, t: Table) -> str:
        caption = f"<caption>{inline(t.caption)}</caption>" if t.caption else ""
        head = "".join(f"<th>{inline(h)}</th>" for h in t.header)
        rows = "".join(
            "<tr>" + "".join(f"<td{_nowrap(c)}>{self.cell(c)}</td>" for c in row) + "</tr>"
            for row in t.rows
        )
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def block(self, b: Block) -> str:
        if isinstance(b, Heading):
            anchor = f' id="{escape(b.anchor)}"' if b.anchor else ""
            return f"<h{b.level}{anchor}>{inline(b.text)}</h{b.level}>"
        if isinstance(b, Para):
            cls = f' class="{b.tone}"' if b.tone != "plain" else ""
            return f"<p{cls}>{inline(b.text)}</p>"
        if isinstance(b, Table):
            return self.table(b)
        if isinstance(b, Code):
            return f'<pre><code class="language-{b.lang}">{escape(b.text)}</code></pre>'
        if isinstance(b, Bullets):
            return "<ul>" + "".join(f"<li>{self.cell(i)}</li>" for i in b.items) + "</ul>"
        data = base64.b64encode(b.read()).decode("ascii")
        return (
            f'<figure><img alt="{escape(b.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{inline(b.caption)}</figcaption></figure>"
        )

    def toc(self, doc: Document, title: str) -> str:
        items = "".join(
            f'<li><a href="#{escape(b.anchor)}">{inline(b.text)}</a></li>'
            for b in doc.blocks
            if isinstance(b, Heading) and b.level == 2 and b.anchor
        )
        return f"<nav><strong>{escape(title)}</strong><ul>{items}</ul></nav>"

    def render(self, doc: Document, toc_title: str) -> str:
        lang = "zh-CN" if doc.lang == "zh" else doc.lang
        first_heading = next(
            (i for i, b in enumerate(doc.blocks) if isinstance(b, Heading)), len(doc.blocks)
        )
        body = [f"<h1>{inline(doc.title)}</h1>"]
        body += [self.block(b) for b in doc.blocks[:first_heading]]
        body.append(self.toc(doc, toc_title))
        body += [self.block(b) for b in doc.blocks[first_heading:]]
        return (
            f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body)
            + "\n</main>\n</body>\n</html>\n"
        )
