"""Accuracy (the accuracy gate), as the seed's eval_precision table: route x task, the accuracy
with its 95% interval, and the difference to the baseline; then the verdict and how it was run."""

from __future__ import annotations

from adaptgate.accuracy.models import AccuracyResult
from adaptgate.report.doc import Block, Para, Table
from adaptgate.report.numbers import num, pct
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, results
from adaptgate.report.sections.data import serve_result
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.view import RunView


def _route(run: RunView) -> str:
    serve = serve_result(run)
    return (serve.plan.route if serve else None) or "-"


def _rows(ctx: Ctx, run: RunView, r: AccuracyResult) -> list[list[str]]:
    t = ctx.t
    compared = {c.task: c for c in r.comparisons}
    rows = []
    for task in r.tasks:
        c = compared.get(task.task)
        rows.append(
            [
                *([run.label] if ctx.merged else []),
                _route(run),
                task.task,
                f"{pct(task.accuracy)} [{pct(task.ci.low)}, {pct(task.ci.high)}]",
                num(task.samples),
                pct(c.baseline_accuracy) if c else "-",
                pct(c.difference) if c else "-",
                t.status(c.verdict) if c else "-",
            ]
        )
    return rows


@SECTIONS.register("accuracy")
def accuracy_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    typed = results(cols, AccuracyResult)
    if not typed:
        return generic_section(ctx, cols)
    header = [
        *([t("col.run")] if ctx.merged else []),
        t("col.route"),
        t("col.task"),
        t("accuracy.accuracy_ci"),
        t("accuracy.items"),
        t("accuracy.baseline"),
        t("accuracy.difference"),
        t("col.verdict"),
    ]
    rows = [row for run, _, r in typed for row in _rows(ctx, run, r)]
    blocks: list[Block] = [Table(header, rows)]
    for run, _, r in typed:
        prefix = f"{run.label}: " if ctx.merged else ""
        how = t("accuracy.chat") if r.chat_template else t("accuracy.no_chat")
        blocks.append(
            Para(
                f"{prefix}**{t.status(r.verdict)}**: {r.reason.in_lang(t.lang)}. "
                + t(
                    "accuracy.how",
                    how=how,
                    version=r.lm_eval_version or "-",
                    tolerance=pct(r.tolerance),
                )
            )
        )
    blocks.append(Para(t("accuracy.note"), "note"))
    return blocks
