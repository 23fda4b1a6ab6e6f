"""A gate's key results (its ``summary``) as labelled values with units: each known key has a
label in both catalogues (``key.<name>``) and a unit kind here; an unknown key keeps its name
(as code) and the format its name implies. Every value is rendered by adaptgate.report.numbers,
so the provenance test still finds it in run.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adaptgate.messages import Said
from adaptgate.record import GateRecord
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import fixed, gib, num, pct, plain, seconds, size

# The unit kind of each known summary key (the label is ``key.<name>`` in labels/*.yaml).
KEY_KINDS: dict[str, str] = {
    # inspect
    "architecture": "text",
    "total_params": "count",
    "quantization": "text",
    "route": "text",
    # convert
    "target": "text",
    "bytes_in": "size",
    "bytes_out": "size",
    "seconds": "seconds",
    "output_gb_per_s": "gb_s",
    "shards": "count",
    "resumed_shards": "count",
    "saturated": "count",
    "nonfinite": "count",
    "verify_problems": "count",
    "int8_rel_error": "pct",
    "int8_worst_layer": "code",
    "also": "conversions",
    # serve
    "served_model_name": "code",
    "max_model_len": "tokens",
    "kv_cache_tokens_predicted": "tokens",
    "kv_cache_tokens_reported": "tokens",
    "kv_ratio": "pct",
    "stage_a_startup_s": "seconds",
    "stage_b_startup_s": "seconds",
    "thinking": "bool",
    "tools": "bool",
    "server_cpus": "list",
    "client_cpus": "list",
    "diagnosis": "text",
    # smoke
    "protocol": "status",
    "quality": "status",
    "counts": "counts",
    "failed_protocol": "code",  # check ids
    "failed_quality": "code",
    # precision
    "reference_mode": "text",
    "reference_seconds": "seconds",
    "prompts": "count",
    "conversion_verdict": "status",
    "conversion_logits_cosine": "ratio",
    "conversion_localized": "code",
    "served_verdict": "status",
    "exact_match_rate": "pct",
    "first_mismatch_in_topk": "pct",
    "logprob_abs_diff_mean": "ratio",
    "topk_kl_mean": "ratio",
    # kvcache
    "kv_cache_dtype": "code",
    "ascend_kv_cache": "text",
    "scales": "text",
    "verdicts": "counts",
    "engine": "text",
    # bench
    "validity": "status",
    "request_throughput": "req_s",
    "output_throughput": "tok_s",
    "ttft_p50_ms": "ms",
    "ttft_p99_ms": "ms",
    "tpot_p50_ms": "ms",
    "tpot_p99_ms": "ms",
    "decode_speed_p50_tok_s": "tok_s",
    "failed": "count",
    "attempts": "count",
}
# Per KV-cache format keys (``fp8_e4m3_kl_mean``): the format, then one of these suffixes.
FORMAT_SUFFIXES: dict[str, str] = {
    "_engine_kl_mean": "ratio",
    "_engine_verdict": "status",
    "_kl_mean": "ratio",
    "_layers_at_risk": "list",
}
# Not shown among the key results: too long for a cell (in the gate's section), or repeated.
HIDDEN = frozenset({"output_dir", "url", "runs", "label"})


def _unit(t: Labels, key: str, text: str) -> str:
    return f"{text} {t(key)}"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def value_of(t: Labels, kind: str, value: Any) -> str:
    """One value by its unit kind, in the report's language."""
    formats: dict[str, Callable[[Any], str]] = {
        "size": size,
        "gib": gib,
        "seconds": seconds,
        "pct": pct,
        "ms": lambda v: f"{fixed(v)} ms",
        "tokens": lambda v: _unit(t, "unit.tokens", num(v)),
        "tok_s": lambda v: f"{fixed(v)} tok/s",
        "req_s": lambda v: f"{fixed(v)} req/s",
        "gb_s": lambda v: f"{fixed(v, 3)} GB/s",
        "count": num,
        "ratio": num,
        "code": lambda v: f"`{v}`",
        "status": lambda v: t.status(str(v)),
        "bool": lambda v: t("word.yes") if v else t("word.no"),
    }
    if isinstance(value, bool) and kind != "bool":
        return t("word.yes") if value else t("word.no")
    if isinstance(value, list):
        return ", ".join(value_of(t, kind if kind != "list" else "text", v) for v in value)
    if isinstance(value, dict) and "text" in value:  # a sentence (Said) the gate stored
        return Said.model_validate(value).in_lang(t.lang)
    if isinstance(value, dict):
        return ", ".join(f"{t.status(str(k))} {value_of(t, 'text', v)}" for k, v in value.items())
    fmt = formats.get(kind)
    return fmt(value) if fmt is not None else num(value)


def kind_of(key: str) -> tuple[str, str, str] | None:
    """(label key, unit kind, KV-cache format or "") of a known key; None for a key the
    catalogue does not know."""
    if key in KEY_KINDS:
        return f"key.{key}", KEY_KINDS[key], ""
    for suffix, kind in FORMAT_SUFFIXES.items():
        if key.endswith(suffix) and len(key) > len(suffix):
            return f"key.format{suffix}", kind, key[: -len(suffix)]
    return None


def key_result(t: Labels, key: str, value: Any) -> str | None:
    """``label: value`` for one summary entry, or None when there is nothing to show."""
    if key in HIDDEN or value is None or value in ([], {}, ""):
        return None
    known = kind_of(key)
    if known is None:  # readable fallback: the key as code, the value as its name implies
        from adaptgate.report.sections.generic import fmt_by_key

        if isinstance(value, dict):
            if not all(map(_scalar, value.values())):
                return None
            shown = ", ".join(f"{a} {fmt_by_key(a, x)}" for a, x in value.items())
        elif isinstance(value, list):
            if not all(map(_scalar, value)):
                return None
            shown = ", ".join(fmt_by_key(key, x) for x in value)
        else:
            shown = plain(value) if isinstance(value, int) else fmt_by_key(key, value)
        return f"`{key}`: {shown}"
    label_key, kind, fmt = known
    label = f"`{fmt}` {t(label_key)}" if fmt else t(label_key)
    if kind == "conversions":
        if not isinstance(value, dict):
            return None
        parts = [
            f"`{name}` {size(get_bytes)}"
            for name, item in value.items()
            if isinstance(item, dict) and (get_bytes := item.get("bytes_out")) is not None
        ]
        return f"{label}: {', '.join(parts)}" if parts else None
    if isinstance(value, dict) and not all(map(_scalar, value.values())):
        return None
    if isinstance(value, list) and not all(map(_scalar, value)):
        return None
    return f"{label}: {value_of(t, kind, value)}"


def key_results(t: Labels, gate: GateRecord) -> str:
    """The gate's key results, labelled, in the order the gate recorded them."""
    parts = [text for k, v in gate.summary.items() if (text := key_result(t, k, v))]
    return "; ".join(parts)
