"""Markdown rendering of a run record.

Every number shown comes from run.json: the summary table from each gate's ``summary``, the
sections from each gate's ``result`` through the section renderer registered for that gate.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from typing import Any

from adaptgate.pipeline.record import GateRecord, RunRecord
from adaptgate.registry import Registry

SectionRenderer = Callable[[GateRecord], str]
SECTIONS: Registry[SectionRenderer] = Registry("report section")

STATUS_MARK = {"PASS": "PASS", "FAIL": "**FAIL**", "SKIPPED": "SKIPPED", "ERROR": "**ERROR**"}


def md_escape(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def _summary_table(record: RunRecord) -> str:
    rows = []
    for g in record.gates:
        numbers = "; ".join(f"{k}={fmt_value(v)}" for k, v in g.summary.items())
        seconds = f"{g.seconds:.1f}" if g.seconds is not None else ""
        rows.append([g.title, STATUS_MARK[g.status.value], g.reason, numbers, seconds])
    return md_table(["Gate", "Status", "Reason", "Measured", "Seconds"], rows)


def _environment(record: RunRecord) -> str:
    host = record.host
    rows: list[list[object]] = [
        ["adaptgate", record.adaptgate_version],
        ["host", f"{host.hostname} ({host.platform}, {host.machine})"],
        ["python", host.python],
        ["CPUs", host.cpu_count or "unknown"],
        ["memory", f"{host.memory_bytes / 2**30:.1f} GiB" if host.memory_bytes else "unknown"],
    ]
    rows += [[name, version] for name, version in sorted(host.packages.items())]
    if host.cann_version:
        rows.append(["CANN", host.cann_version])
    return md_table(["Component", "Version"], rows)


def _generic_section(gate: GateRecord) -> str:
    if not gate.summary:
        return ""
    return md_table(["Value", ""], [[k, fmt_value(v)] for k, v in gate.summary.items()])


def reproduce_command(record: RunRecord) -> str:
    s = record.settings
    args = ["adaptgate", "run", s.model, "--target", s.target, "--run-dir", record.run_dir]
    if s.device:
        args += ["--device", s.device, "--devices", str(s.devices)]
    if s.max_model_len:
        args += ["--max-model-len", str(s.max_model_len)]
    if s.gpu_memory_utilization:
        args += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
    if s.allow_pickle:
        args.append("--allow-pickle")
    return shlex.join(args)


def render_markdown(record: RunRecord) -> str:
    import adaptgate.report.sections  # noqa: F401 - registers the per-gate sections

    s = record.settings
    parts = [
        f"# Adaptation report: {s.model}",
        "",
        f"Target `{s.target}`"
        + (f", device `{s.device}` x {s.devices}" if s.device else "")
        + f". Run started {record.created}. Overall: **{record.verdict.value}**.",
        "",
        "## Summary",
        "",
        _summary_table(record),
        "",
    ]
    for gate in record.gates:
        if gate.name == "report":
            continue
        parts += [f"## {gate.title}", "", f"Status: **{gate.status.value}** - {gate.reason}", ""]
        if gate.status.value in ("PASS", "FAIL") and gate.result is not None:
            body = SECTIONS.get(gate.name)(gate) if gate.name in SECTIONS else ""
            parts += [body or _generic_section(gate), ""]
        if gate.artifacts:
            parts += ["Files: " + ", ".join(f"`{a}`" for a in gate.artifacts), ""]
    parts += [
        "## Environment",
        "",
        _environment(record),
        "",
        "## Reproduce",
        "",
        "```bash",
        reproduce_command(record),
        "```",
        "",
    ]
    return "\n".join(parts)
