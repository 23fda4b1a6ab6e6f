"""The exact commands that reproduce every number of the report (复现命令)."""

from __future__ import annotations

import shlex
from typing import Any

from adaptgate.record import RunRecord, RunSettings
from adaptgate.report.doc import Block, Code, Para
from adaptgate.report.sections.base import Ctx
from adaptgate.report.sections.commands import gate_commands


def _words(value: Any) -> list[str]:
    if isinstance(value, bool):
        return []
    if isinstance(value, list | tuple):
        return [",".join(map(str, value))]
    return [str(value)]


def reproduce_command(record: RunRecord) -> str:
    """``adaptgate run`` with every setting of the run that differs from its default, after the
    ADAPTGATE_* variables the run recorded (``env``: no option, the environment)."""
    s = record.settings
    args = [*(f"{k}={v}" for k, v in s.env.items()), "adaptgate", "run", s.model]
    for name, field in RunSettings.model_fields.items():
        value = getattr(s, name)
        if name in ("model", "env") or value is None or value in (field.default, []):
            continue
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, *_words(value)]
    args += ["--run-dir", record.run_dir]
    return shlex.join(args)


def reproduce_section(ctx: Ctx, report_command: str) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = [Para(t("reproduce.intro"))]
    for run in ctx.runs:
        lines = [f"# {run.label}"] if ctx.merged else []
        lines.append(reproduce_command(run.record))
        for gate, commands in gate_commands(run):
            lines += ["", f"# {t.opt(f'gate.{gate.name}', gate.title)}", *commands]
        blocks.append(Code("\n".join(lines)))
    blocks += [Para(t("reproduce.report")), Code(report_command)]
    return blocks
