"""Precision (the precision gate): one column per compared pair (the seed ``001_*`` table: NPU vs
GPU, NPU vs CPU), each value beside the threshold it was held to; the checks that failed; where
the error starts (localization) and the error of every layer.

A pair is a tensor comparison of two reference dumps (a CompareResult: logits, hidden states,
greedy generations) or the served-model check (a ServedResult: the server's greedy tokens and
logprobs against the CPU reference); the gate's result (a PrecisionGateResult) holds them.
"""

from __future__ import annotations

from adaptgate.metrics.limits import Check
from adaptgate.precision.models import CompareResult, DumpSummary, PrecisionGateResult, ServedResult
from adaptgate.precision.thresholds import limit_failed
from adaptgate.reference.dump import ReferenceDump
from adaptgate.report.doc import Block, Bullets, Heading, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import num, pct, seconds, size
from adaptgate.report.sections.base import SECTIONS, Ctx, GateCols, results

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

Pair = CompareResult | ServedResult


def pairs_of(result: PrecisionGateResult) -> list[Pair]:
    """The compared pairs in a precision result, in order."""
    return [p for p in (result.conversion, result.served) if p is not None]


def _side(t: Labels, d: DumpSummary) -> str:
    """``FP8_BLOCK (cpu float32)``: what was computed, and where."""
    where = f"{d.device} {d.dtype}".strip()
    if d.simulate:
        where += f", {t('precision.simulated')} {d.simulate}"
    return f"{d.quantization} ({where})".strip()


def pair_name(t: Labels, pair: Pair) -> str:
    ref = _side(t, pair.reference)
    if isinstance(pair, ServedResult):
        return f"{t('precision.served')} `{pair.model}` vs {ref}"
    return f"{_side(t, pair.candidate)} vs {ref}"


def _value(metric: str, value: float | int) -> str:
    return pct(value) if metric in RATES else num(value)


def _limit(check: Check | None) -> str:
    if check is None:
        return ""
    op = "≥" if check.bound == "min" else "≤"
    return f" ({op} {num(check.threshold)} {'✓' if check.passed else '✗'})"


def pair_rows(pair: Pair) -> list[tuple[str, str]]:
    checks = {(c.subject, c.metric): c for c in pair.checks}

    def cell(subject: str, metric: str, value: float | int) -> str:
        check = checks.get((subject, metric))
        text = _value(metric, value) + _limit(check)
        return f"**{text}**" if check and not check.passed else text

    if isinstance(pair, ServedResult):
        m = pair.metrics
        return [
            (f"served {k}", cell("served", k, value))
            for k in SERVED
            if (value := getattr(m, k)) is not None
        ]
    rows: list[tuple[str, str]] = []
    logits = pair.row("logits")
    if logits is not None:
        rows += [
            (f"logits {k}", cell("logits", k, getattr(logits.metrics, k))) for k in LOGIT_TENSOR
        ]
        if logits.logits is not None:
            rows += [
                (f"logits {k}", cell("logits", k, getattr(logits.logits, k))) for k in LOGIT_EXTRA
            ]
    layers = [row for row in pair.tensors if row.layer is not None]
    for metric, pick in (("cosine", min), ("rel_l2", max)):
        if layers:
            worst = pick(layers, key=lambda r: float(getattr(r.metrics, metric)))
            rows.append(
                (
                    f"hidden {metric} ({'min' if pick is min else 'max'})",
                    cell(f"layer {worst.layer}", metric, getattr(worst.metrics, metric))
                    + f" @ {worst.name}",
                )
            )
    gen = pair.generation
    for k in ("exact_match_rate", "sequence_match_rate", "earliest_divergence"):
        if gen is not None and (value := getattr(gen, k)) is not None:
            rows.append((f"generation {k}", cell("generation", k, value)))
    return rows


def pair_table(ctx: Ctx, cols: GateCols) -> Table | None:
    t = ctx.t
    columns: list[tuple[str, dict[str, str], str]] = []
    for run, _, r in results(cols, PrecisionGateResult):
        for pair in pairs_of(r):
            name = pair_name(t, pair)
            columns.append(
                (
                    f"{run.label}: {name}" if ctx.merged else name,
                    dict(pair_rows(pair)),
                    pair.verdict,
                )
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


def layer_table(t: Labels, pair: CompareResult) -> Table | None:
    rows = [
        [
            row.name,
            num(row.metrics.cosine),
            num(row.metrics.rel_l2),
            num(row.metrics.max_abs_err),
            num(row.metrics.mean_abs_err),
        ]
        for row in pair.tensors[:MAX_LAYER_ROWS]
    ]
    if not rows:
        return None
    header = [t("col.tensor"), "cosine", "rel_l2", "max_abs_err", "mean_abs_err"]
    return Table(header, rows, t("precision.layers_caption"))


def localization(t: Labels, pair: CompareResult) -> list[str]:
    loc = pair.localization
    items = []
    if loc.name:
        where = f"{loc.name}" + (f" ({loc.module})" if loc.module else "")
        criterion = loc.criterion.in_lang(t.lang) if loc.criterion else ""
        items.append(f"{t('precision.localized')}: **{where}** - {criterion}")
    else:
        items.append(t("precision.not_localized"))
    if loc.largest_jump_layer is not None:
        items.append(
            f"{t('precision.largest_jump')}: {t('col.layer')} {num(loc.largest_jump_layer)}, "
            f"rel_l2 +{num(loc.largest_jump)}"
        )
    return items


def failed_checks(t: Labels, pair: Pair) -> list[str]:
    return [limit_failed(c).said.in_lang(t.lang) for c in pair.checks if not c.passed]


def reference_rows(t: Labels, ref: ReferenceDump) -> list[tuple[str, str]]:
    """The CPU reference every pair is measured against (a ReferenceDump)."""
    rows = [
        (t("precision.ref_model"), f"`{ref.model.path}` ({ref.model.quantization})"),
        (t("precision.ref_compute"), f"{ref.device} {ref.dtype}, {ref.mode}"),
        (t("precision.ref_prompts"), num(len(ref.prompts))),
        (t("precision.ref_new_tokens"), num(ref.max_new_tokens)),
    ]
    if ref.timings is not None:
        rows.append((t("precision.ref_time"), seconds(ref.timings.total_seconds)))
        if ref.timings.peak_rss_bytes:
            rows.append((t("precision.ref_rss"), size(ref.timings.peak_rss_bytes)))
    return rows


def _excerpt(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return f"`{flat if len(flat) <= EXCERPT else flat[: EXCERPT - 3] + '...'}`" if flat else ""


def outputs_table(t: Labels, result: PrecisionGateResult) -> Table | None:
    """Each prompt's greedy output: the reference's, and the server's with how far it matched
    (the seed ``001_*`` shows the outputs it judged)."""
    prompts = result.reference.prompts
    served = {p.id: p for p in (result.served.prompts if result.served else [])}
    texts = any(p.server_text for p in served.values())
    if not prompts:
        return None
    header = [t("col.prompt"), t("precision.ref_output")]
    if served:
        header += [t("precision.served_output")] if texts else []
        header.append(t("precision.matched"))
    rows = []
    for p in prompts:
        row = [f"{p.id} ({p.category})", _excerpt(p.generated_text)]
        s = served.get(p.id)
        if served:
            row += [_excerpt(s.server_text) if s else "-"] if texts else []
            row.append(f"{num(s.matched_tokens)} / {num(s.reference_tokens)}" if s else "-")
        rows.append(row)
    return Table(header, rows)


def predicted_vs_measured(t: Labels, result: PrecisionGateResult, prefix: str = "") -> Table | None:
    """Where the converted model is W8A8 simulated on the CPU (``--simulate w8a8-dynamic``, the
    error Ascend would show): that prediction beside the error the engine measured serving it
    (issue 16). Only the full-vocabulary KL is predicted; the served one is estimated over the
    server's top-k."""
    predicted = result.conversion
    if predicted is None or predicted.candidate.simulate is None:
        return None
    served = result.served
    logits = predicted.row("logits")
    gen = predicted.generation
    kl = logits.logits.kl_mean if logits and logits.logits else None
    match = gen.exact_match_rate if gen else None
    predicted_cells = [
        "-" if kl is None else num(kl),
        "-" if match is None else pct(match),
        f"**{t.status(predicted.verdict)}**",
    ]
    measured = [t("precision.not_served")] * 3
    if served is not None:
        m = served.metrics
        kl_est = "-" if m.topk_kl_mean is None else num(m.topk_kl_mean)
        measured = [kl_est, pct(m.exact_match_rate), f"**{t.status(served.verdict)}**"]
    names = ["KL", "exact_match_rate", f"**{t('col.verdict')}**"]
    rows = [list(row) for row in zip(names, predicted_cells, measured, strict=True)]
    header = [t("col.metric"), t("precision.predicted"), t("precision.measured")]
    caption = f"{prefix}{t('precision.pvm')}: {t('precision.pvm_caption')}"
    return Table(header, rows, caption)


@SECTIONS.register("precision")
def precision_section(ctx: Ctx, cols: GateCols) -> list[Block]:
    t = ctx.t
    table = pair_table(ctx, cols)
    blocks: list[Block] = [table] if table is not None else []
    for run, _, r in results(cols, PrecisionGateResult):
        prefix = f"{run.label}: " if ctx.merged else ""
        if r.served_skipped:
            blocks.append(
                Para(
                    f"{prefix}{t('precision.served_skipped')}: {r.served_skipped.in_lang(t.lang)}",
                    "note",
                )
            )
        pvm = predicted_vs_measured(t, r, prefix)
        if pvm is not None:
            blocks.append(pvm)
        for pair in pairs_of(r):
            name = pair_name(t, pair)
            failed = failed_checks(t, pair)
            if failed:
                blocks += [
                    Heading(f"{t('precision.failed')} ({prefix}{name})", 3),
                    Bullets(failed),
                ]
            items = localization(t, pair) if isinstance(pair, CompareResult) else []
            if pair.reason.text:
                items.insert(0, pair.reason.in_lang(t.lang))
            if items:
                blocks.append(Bullets([f"{prefix}{name}: {i}" for i in items]))
            layers = layer_table(t, pair) if isinstance(pair, CompareResult) else None
            if layers is not None:
                blocks += [Heading(f"{t('precision.layers')} ({prefix}{name})", 3), layers]
            if pair.thresholds.profile:
                blocks.append(
                    Bullets(
                        [
                            f"{t('precision.thresholds')}: {pair.thresholds.profile} "
                            f"({pair.thresholds.file})"
                        ]
                    )
                )
        where = f" ({run.label})" if ctx.merged else ""
        blocks += [
            Heading(f"{t('precision.reference')}{where}", 3),
            Table(
                [t("col.item"), t("col.value")],
                [list(row) for row in reference_rows(t, r.reference)],
            ),
        ]
        outputs = outputs_table(t, r)
        if outputs is not None:
            blocks += [Heading(f"{t('precision.outputs')}{where}", 3), outputs]
    return blocks
