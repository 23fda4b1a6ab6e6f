"""SAFE / RISKY / UNSAFE per format from measured values, against thresholds as data.

The limits live in ``thresholds.yaml`` beside this module (or a user's file of that shape);
limits and checks are the precision gate's (:class:`adaptgate.precision.thresholds.Limit`,
:func:`~adaptgate.precision.thresholds.evaluate`). A layer is at risk when it fails a ``scan``
limit; the format is UNSAFE when it fails an ``unsafe`` limit, RISKY when it fails a ``risky``
one, SAFE otherwise. The reason lists every failed limit with its measured value.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import UsageError
from adaptgate.kvcache.formats import KVFormat
from adaptgate.kvcache.scan import FormatLayerScan, LayerScan
from adaptgate.messages import Said, joined, said
from adaptgate.metrics.limits import Check, Limit, evaluate, load_yaml_model

DEFAULT_FILE = "thresholds.yaml"
SCAN_METRICS = {"saturated_fraction", "flushed_fraction", "rel_rms_error"}
FORMAT_METRICS = {
    "saturated_fraction", "overflow_fraction", "clip_ratio", "layers_at_risk", "kl_mean", "kl_max",
    "top1_agreement", "exact_match_rate", "repetition_increase", "degenerated_share",
    "nonfinite_steps",
}  # fmt: skip


class KVThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    file: str = ""
    scan: dict[str, Limit] = Field(default_factory=dict)
    unsafe: dict[str, Limit] = Field(default_factory=dict)
    risky: dict[str, Limit] = Field(default_factory=dict)


def load_kv_thresholds(path: Path | None = None) -> KVThresholds:
    parsed, label = load_yaml_model(
        KVThresholds,
        "adaptgate.kvcache",
        DEFAULT_FILE,
        path,
        "KV-cache threshold file",
        label_field="file",
    )
    for section, known in (
        ("scan", SCAN_METRICS),
        ("unsafe", FORMAT_METRICS),
        ("risky", FORMAT_METRICS),
    ):
        unknown = set(getattr(parsed, section)) - known
        if unknown:
            raise UsageError(
                f"{label}: {section}: unknown metric {sorted(unknown)[0]!r}",
                fix=f"known: {', '.join(sorted(known))}",
            )
    return parsed


FREE_RUNNING_METRICS = ("repetition_increase", "degenerated_share")


def cap_unmeasured(verdict: str, not_measured: list[str], measured_elsewhere: bool) -> str:
    """No SAFE on what was not measured: SAFE becomes RISKY when a limited metric was not
    measured here and nothing else (the engine) measured it."""
    if verdict == "SAFE" and not_measured and not measured_elsewhere:
        return "RISKY"
    return verdict


def repetition_limit(th: KVThresholds) -> float:
    """The per-prompt repetition increase that counts a prompt as degenerated."""
    limit = th.unsafe.get("repetition_increase")
    return limit.max if limit is not None and limit.max is not None else 0.25


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def judge_layer(scan: LayerScan, fls: FormatLayerScan, fmt: KVFormat, th: KVThresholds) -> None:
    """Sets ``fls.at_risk`` and ``fls.reasons`` from the ``scan`` limits."""
    fls.reasons = []
    for t, ts in (("K", fls.k), ("V", fls.v)):
        values: dict[str, float | None] = {
            "saturated_fraction": _fraction(ts.saturated_total, ts.elements),
            "rel_rms_error": ts.rel_rms_error,
        }
        if fmt.is_fp8:
            values["flushed_fraction"] = _fraction(ts.flushed_total, ts.elements)
        for check in evaluate(f"{scan.name} {t}", th.scan, values):
            if check.passed:
                continue
            if check.metric == "saturated_fraction":
                heads = [h for h, n in enumerate(ts.saturated) if n]
                fls.reasons.append(
                    f"{t} saturates: {ts.saturated_total} elements (heads {heads}), "
                    f"max |{t}/scale| {max(ts.amax_scaled):.4g} > {fls.limit:g}"
                )
            elif check.metric == "flushed_fraction":
                fls.reasons.append(f"{t} underflows: {check.value:.2%} of values stored as 0")
            else:
                fls.reasons.append(f"{t} relative RMS error {check.value:.3g}")
    fls.at_risk = bool(fls.reasons)


def decide(
    values: dict[str, float | None], th: KVThresholds, subject: str
) -> tuple[str, list[Check]]:
    """The verdict and every check made (unsafe first, then risky)."""
    unsafe = evaluate(subject, th.unsafe, values)
    risky = evaluate(subject, th.risky, values)
    if any(not c.passed for c in unsafe):
        return "UNSAFE", unsafe + risky
    if any(not c.passed for c in risky):
        return "RISKY", unsafe + risky
    return "SAFE", unsafe + risky


def reason_text(
    verdict: str, checks: list[Check], at_risk: list[str], notes: list[str | Said]
) -> Said:
    """The failed limits, the layers at risk and the notes, as one sentence in each language
    (a note given as a plain string is quoted as written)."""
    failed: list[Said] = []
    seen: set[str] = set()
    for c in checks:
        if not c.passed and c.metric not in seen:
            seen.add(c.metric)
            failed.append(
                said(
                    "kvcache.failed_limit",
                    metric=c.metric,
                    value="n/a" if c.value is None else f"{c.value:.4g}",
                    op=">=" if c.bound == "min" else "<=",
                    threshold=f"{c.threshold:g}",
                )
            )
    parts: list[Said] = []
    if failed:
        parts.append(joined(failed))
    if at_risk:
        parts.append(said("kvcache.layers_at_risk", layers=", ".join(at_risk)))
    if verdict == "SAFE":
        parts.insert(0, said("kvcache.every_limit_met"))
    parts += [Said.model_validate(n) for n in notes]
    return joined(parts, "kvcache.then") if parts else Said(text="")
