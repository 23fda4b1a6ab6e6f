"""Precision (the precision gate): one column per compared pair (the seed ``001_*`` table: NPU vs
GPU, NPU vs CPU), each value beside the threshold it was held to; the checks that failed; where
the error starts (localization) and the error of every layer.

A pair is a tensor comparison of two reference dumps (``kind: compare``: logits, hidden states,
greedy generations) or the served-model check (a ServedResult: the server's greedy tokens and
logprobs against the CPU reference). The gate's result is one of them or holds several.
"""

from __future__ import annotations

from typing import Any

from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num, pct, seconds, size
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, get
from adaptgate.report.sections.generic import generic_section
from adaptgate.report.sections.matrix import matrix_table

LOGIT_TENSOR = ("cosine", "max_abs_err", "mean_abs_err", "rel_l1", "rel_l2", "within_1e3")
LOGIT_EXTRA = ("kl_mean", "kl_max", "top1_agreement", "top5_overlap")
RATES = frozenset(
    {"exact_match_rate", "sequence_match_rate", "top1_agreement", "top5_overlap", "within_1e3",
     "first_mismatch_in_topk"}
)  # fmt: skip
SERVED = (
    "exact_match_rate",
    "first_mismatch_in_topk",
    "logprob_abs_diff_mean",
    "logprob_abs_diff_max",
    "topk_kl_mean",
    "prompt_logprob_abs_diff_mean",
)
MAX_LAYER_ROWS = 100
EXCERPT = 80


def pairs_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The compared pairs in a precision result, in order."""

    def is_pair(x: Any) -> bool:
        return isinstance(x, dict) and (
            isinstance(x.get("tensors"), list)
            or (isinstance(x.get("metrics"), dict) and "exact_match_rate" in x["metrics"])
        )

    if is_pair(result):
        return [result]
    found: list[dict[str, Any]] = []
    for value in result.values():
        items = value if isinstance(value, list) else [value]
        found += [i for i in items if is_pair(i)]
    return found


def _side(t: Labels, d: dict[str, Any]) -> str:
    """``FP8_BLOCK (cpu float32)``: what was computed, and where."""
    where = f"{d.get('device', '?')} {d.get('dtype', '')}".strip()
    if d.get("simulate"):
        where += f", {t('precision.simulated')} {d['simulate']}"
    return f"{d.get('quantization', '')} ({where})".strip()


def pair_name(t: Labels, pair: dict[str, Any]) -> str:
    ref = _side(t, pair.get("reference") or {})
    if "tensors" not in pair:
        return f"{t('precision.served')} `{pair.get('model', '')}` vs {ref}"
    return f"{_side(t, pair.get('candidate') or {})} vs {ref}"


def _value(metric: str, value: Any) -> str:
    return pct(value) if metric in RATES else num(value)


def _limit(check: dict[str, Any] | None) -> str:
    if not check:
        return ""
    op = "≥" if check.get("bound") == "min" else "≤"
    mark = "✓" if check.get("passed") else "✗"
    return f" ({op} {num(check.get('threshold'))} {mark})"


def pair_rows(pair: dict[str, Any]) -> list[tuple[str, str]]:
    checks = {(c.get("subject"), c.get("metric")): c for c in pair.get("checks") or []}

    def cell(subject: str, metric: str, value: Any) -> str:
        check = checks.get((subject, metric))
        text = _value(metric, value) + _limit(check)
        return f"**{text}**" if check and not check.get("passed") else text

    rows: list[tuple[str, str]] = []
    if "tensors" not in pair:
        m = pair.get("metrics") or {}
        return [(f"served {k}", cell("served", k, m[k])) for k in SERVED if m.get(k) is not None]
    tensors = {row.get("name"): row for row in pair["tensors"]}
    logits = tensors.get("logits") or {}
    for k in LOGIT_TENSOR:
        if get(logits, f"metrics.{k}") is not None:
            rows.append((f"logits {k}", cell("logits", k, logits["metrics"][k])))
    for k in LOGIT_EXTRA:
        if get(logits, f"logits.{k}") is not None:
            rows.append((f"logits {k}", cell("logits", k, logits["logits"][k])))
    layers = [row for row in pair["tensors"] if row.get("layer") is not None]
    for metric, pick in (("cosine", min), ("rel_l2", max)):
        values = [r for r in layers if get(r, f"metrics.{metric}") is not None]
        if values:
            worst = pick(values, key=lambda r: r["metrics"][metric])
            subject = f"layer {worst['layer']}"
            rows.append(
                (
                    f"hidden {metric} ({'min' if pick is min else 'max'})",
                    cell(subject, metric, worst["metrics"][metric]) + f" @ {worst.get('name')}",
                )
            )
    gen = pair.get("generation") or {}
    for k in ("exact_match_rate", "sequence_match_rate", "earliest_divergence"):
        if gen.get(k) is not None:
            rows.append((f"generation {k}", cell("generation", k, gen[k])))
    return rows


def pair_table(ctx: Ctx, cols: GateCols) -> Table | None:
    t = ctx.t
    columns: list[tuple[str, dict[str, str], str]] = []
    for run, gate in cols:
        for pair in pairs_of(gate.result or {}):
            name = pair_name(t, pair)
            verdict = str(pair.get("verdict", ""))
            columns.append(
                (f"{run.label}: {name}" if ctx.merged else name, dict(pair_rows(pair)), verdict)
            )
    if not columns:
        return None
    order: list[str] = []
    for _, rows, _ in columns:
        order += [k for k in rows if k not in order]
    body = [[k] + [rows.get(k, "-") for _, rows, _ in columns] for k in order]
    body.append(
        [f"**{t('col.verdict')}**"] + [f"**{t.status(v)}**" if v else "-" for _, _, v in columns]
    )
    return Table([t("col.metric"), *(name for name, _, _ in columns)], body)


def layer_table(t: Labels, pair: dict[str, Any]) -> Table | None:
    rows = []
    for row in (pair.get("tensors") or [])[:MAX_LAYER_ROWS]:
        m = row.get("metrics") or {}
        rows.append(
            [
                str(row.get("name")),
                num(m.get("cosine")),
                num(m.get("rel_l2")),
                num(m.get("max_abs_err")),
                num(m.get("mean_abs_err")),
            ]
        )
    if not rows:
        return None
    header = [t("col.tensor"), "cosine", "rel_l2", "max_abs_err", "mean_abs_err"]
    return Table(header, rows, t("precision.layers_caption"))


def localization(t: Labels, pair: dict[str, Any]) -> list[str]:
    loc = pair.get("localization") or {}
    items = []
    if loc.get("name"):
        where = f"{loc['name']}" + (f" ({loc['module']})" if loc.get("module") else "")
        items.append(f"{t('precision.localized')}: **{where}** - {loc.get('criterion', '')}")
    elif "tensors" in pair:
        items.append(t("precision.not_localized"))
    if loc.get("largest_jump_layer") is not None:
        items.append(
            f"{t('precision.largest_jump')}: {t('col.layer')} {num(loc['largest_jump_layer'])}, "
            f"rel_l2 +{num(loc.get('largest_jump'))}"
        )
    return items


def failed_checks(pair: dict[str, Any]) -> list[str]:
    out = []
    for c in pair.get("checks") or []:
        if not c.get("passed"):
            op = ">=" if c.get("bound") == "min" else "<="
            out.append(
                f"{c.get('subject')} {c.get('metric')} {num(c.get('value'))} "
                f"(need {op} {num(c.get('threshold'))}; {c.get('source', '')})"
            )
    return out


def reference_rows(t: Labels, ref: dict[str, Any]) -> list[tuple[str, str]]:
    """The CPU reference every pair is measured against (a ReferenceDump)."""
    model = ref.get("model") or {}
    timings = ref.get("timings") or {}
    rows = [
        (
            t("precision.ref_model"),
            f"`{model.get('path', '-')}` ({model.get('quantization', '-')})",
        ),
        (t("precision.ref_compute"), f"{ref.get('device')} {ref.get('dtype')}, {ref.get('mode')}"),
        (t("precision.ref_prompts"), num(len(ref.get("prompts") or []))),
        (t("precision.ref_new_tokens"), num(ref.get("max_new_tokens", "-"))),
    ]
    if timings.get("total_seconds") is not None:
        rows.append((t("precision.ref_time"), seconds(timings["total_seconds"])))
    if timings.get("peak_rss_bytes"):
        rows.append((t("precision.ref_rss"), size(timings["peak_rss_bytes"])))
    return rows


def _excerpt(text: Any) -> str:
    flat = " ".join(str(text or "").split())
    return f"`{flat if len(flat) <= EXCERPT else flat[: EXCERPT - 3] + '...'}`" if flat else ""


def outputs_table(t: Labels, result: dict[str, Any]) -> Table | None:
    """Each prompt's greedy output: the reference's, and the server's with how far it matched
    (the seed ``001_*`` shows the outputs it judged)."""
    prompts = get(result, "reference.prompts", [])
    served = {p.get("id"): p for p in get(result, "served.prompts", [])}
    texts = any(p.get("server_text") for p in served.values())
    if not prompts:
        return None
    header = [t("col.prompt"), t("precision.ref_output")]
    if served:
        header += [t("precision.served_output")] if texts else []
        header.append(t("precision.matched"))
    rows = []
    for p in prompts:
        row = [f"{p.get('id')} ({p.get('category', '')})", _excerpt(p.get("generated_text"))]
        s = served.get(p.get("id"))
        if served:
            row += [_excerpt(s.get("server_text")) if s else "-"] if texts else []
            row.append(
                f"{num(s.get('matched_tokens'))} / {num(s.get('reference_tokens'))}" if s else "-"
            )
        rows.append(row)
    return Table(header, rows)


@SECTIONS.register("precision")
def precision_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    table = pair_table(ctx, cols)
    has_reference = any(get(g.result, "reference.model") for _, g in cols)
    if table is None and not has_reference:
        table = matrix_table(ctx, cols, ("comparisons", "pairs"))
        return [table] if table is not None else generic_section(ctx, cols)
    blocks: list[Block] = [table] if table is not None else []
    for run, gate in cols:
        prefix = f"{run.label}: " if ctx.merged else ""
        r = gate.result or {}
        if r.get("served_skipped"):
            blocks.append(
                Para(f"{prefix}{t('precision.served_skipped')}: {r['served_skipped']}", "note")
            )
        for pair in pairs_of(gate.result or {}):
            name = pair_name(t, pair)
            failed = failed_checks(pair)
            if failed:
                blocks += [
                    Heading(f"{t('precision.failed')} ({prefix}{name})", 3),
                    Bullets(failed),
                ]
            items = localization(t, pair)
            if pair.get("reason"):
                items.insert(0, str(pair["reason"]))
            if items:
                blocks.append(Bullets([f"{prefix}{name}: {i}" for i in items]))
            layers = layer_table(t, pair)
            if layers is not None:
                blocks += [Heading(f"{t('precision.layers')} ({prefix}{name})", 3), layers]
            thresholds = get(pair, "thresholds.profile")
            if thresholds:
                source = get(pair, "thresholds.file", "")
                blocks.append(Bullets([f"{t('precision.thresholds')}: {thresholds} ({source})"]))
        if isinstance(r.get("reference"), dict) and get(r, "reference.model"):
            rows = reference_rows(t, r["reference"])
            blocks += [
                Heading(f"{t('precision.reference')}{f' ({run.label})' if ctx.merged else ''}", 3),
                Table([t("col.item"), t("col.value")], [list(row) for row in rows]),
            ]
            outputs = outputs_table(t, r)
            if outputs is not None:
                blocks += [
                    Heading(
                        f"{t('precision.outputs')}{f' ({run.label})' if ctx.merged else ''}", 3
                    ),
                    outputs,
                ]
    return blocks
