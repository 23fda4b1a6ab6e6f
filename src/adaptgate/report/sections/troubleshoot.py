"""The troubleshooting guide for the model and target (seed 000 §8, seed 004's OOM ladder): what
to do when startup runs out of memory, when graph capture fails, when accuracy drops; each step
with its command, filled with this run's values (report/data/troubleshooting.yaml, drawing on the
doctor signatures of serve/doctor.yaml)."""

from __future__ import annotations

import shlex
from string import Formatter
from typing import Any

from adaptgate.report.doc import Block, Heading, Table
from adaptgate.report.numbers import num
from adaptgate.report.sections.base import Ctx
from adaptgate.report.sections.commands import gate_commands
from adaptgate.report.sections.data import load, platform, serve_result
from adaptgate.report.view import RunView
from adaptgate.serve.models import LaunchPlan


def _unknown(template: str, fill: dict[str, str]) -> bool:
    """Whether the step names a value run.json does not hold."""
    return any(name and name not in fill for _, name, _, _ in Formatter().parse(template))


def values(run: RunView) -> dict[str, str]:
    s = run.record.settings
    serve = serve_result(run)
    plan = serve.plan if serve else None
    stage = (serve.stage_b or serve.stage_a) if serve else None
    precision = [shlex.join(argv) for gate, argv in gate_commands(run) if gate.name == "precision"]
    found: dict[str, Any] = {
        "model": s.model,
        "served": (plan.served_path if plan else None) or s.model,
        "target": s.target,
        "log": (stage.log if stage else None) or "<LOG>",
        "max_model_len": (plan.max_model_len if plan else None) or s.max_model_len,
        "max_num_seqs": plan.max_num_seqs if plan else None,
        "utilization": _utilization(plan) or s.gpu_memory_utilization,
        "devices": s.devices,
        "precision": precision[0] if precision else "adaptgate precision <URL> --reference <DIR>",
    }
    return {k: num(v) if not isinstance(v, str) else v for k, v in found.items() if v is not None}


def _utilization(plan: LaunchPlan | None) -> float | None:
    """The fraction the launch used (its --gpu-memory-utilization flag; the settings hold it
    only when it was given)."""
    flag = plan.flag("--gpu-memory-utilization") if plan else None
    return float(flag.value) if flag and flag.value else None


def troubleshoot_section(ctx: Ctx) -> list[Block]:
    t = ctx.t
    run = ctx.runs[0]
    where = platform(run.record.settings.target)
    fill = values(run)
    blocks: list[Block] = []
    for situation in load("troubleshooting")["situations"]:
        rows = []
        for step in situation["steps"]:  # in the order to try them
            if step.get("platform", where) != where or _unknown(step[t.lang], fill):
                continue  # a step about a value this run does not have (vLLM CPU's utilization)
            rows.append([step[t.lang].format_map(fill), f"`{step['command'].format_map(fill)}`"])
        blocks += [
            Heading(t(f"trouble.{situation['id']}"), 3),
            Table([t("trouble.action"), t("trouble.command")], rows),
        ]
    return blocks
