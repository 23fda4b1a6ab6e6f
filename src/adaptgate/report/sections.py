"""Report sections per gate, each rendered from that gate's result JSON in run.json."""

from __future__ import annotations

from adaptgate.pipeline.record import GateRecord
from adaptgate.report.markdown import SECTIONS


def demote_headings(markdown: str, levels: int = 1) -> str:
    """Nest a document's headings under a report section (its title line dropped)."""
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("#" * levels + ln if ln.startswith("#") else ln for ln in lines).strip()


@SECTIONS.register("inspect")
def inspect_section(gate: GateRecord) -> str:
    from adaptgate.inspect import InspectResult
    from adaptgate.inspect.render import markdown_report

    text = markdown_report(InspectResult.model_validate(gate.result))
    # the verdict line repeats the section's status line
    body = [ln for ln in text.splitlines() if not ln.startswith("**Verdict:")]
    return demote_headings("\n".join(body))
