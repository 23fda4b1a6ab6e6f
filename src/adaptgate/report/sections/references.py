"""参考文档 / References: the links of report/data/references.yaml for the run's target and
release, and the model cards when the model was given as a hub id. Each link's source is in
the data file (its numbers would not come from run.json, so the report does not quote it)."""

from __future__ import annotations

import re

from adaptgate.report.doc import Block, Para, Table
from adaptgate.report.sections.base import Ctx
from adaptgate.report.sections.data import load, platform, release

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def reference_rows(ctx: Ctx) -> list[list[str]]:
    t = ctx.t
    data = load("references")
    lang = "zh-cn" if t.lang == "zh" else "en"
    rows: list[list[str]] = []
    seen: set[str] = set()
    for run in ctx.runs:
        model = run.record.settings.model
        links = []
        if HUB_ID.match(model):
            links += [(row, row["url"].format(model=model)) for row in data["model_cards"]]
        rel = release(run)
        for row in data["platforms"].get(platform(run.record.settings.target), []):
            if "{release}" in row["url"] and rel is None:
                continue
            links.append((row, row["url"].format(release=rel, lang=lang)))
        for row, url in links:
            if url in seen:
                continue
            seen.add(url)
            label = t(f"refs.{row['kind']}")
            rows.append([label, f"`{url}`"])
    return rows


def references_section(ctx: Ctx) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    rows = reference_rows(ctx)
    if rows:
        blocks.append(Table([t("col.item"), t("refs.link")], rows))
    if not any(HUB_ID.match(r.record.settings.model) for r in ctx.runs):
        blocks.append(Para(t("refs.no_card"), "note"))
    return blocks
