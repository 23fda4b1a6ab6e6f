"""The KV-cache gate in ``adaptgate run``: decides the launch plan's ``--kv-cache-dtype``.

It runs when asked -- ``RunSettings.kv_formats`` (``run --kv-formats``, else the
``ADAPTGATE_KVCACHE`` environment variable, as the run recorded it: ``1``/``all``, or formats such
as ``fp8_e4m3,int8_c8``) -- when the run pins a quantized launch dtype
(``RunSettings.kv_cache_dtype``, ``run --kv-cache-dtype fp8_e4m3``: that format is tested too, and
committed to), or when the plan would use a quantized cache anyway: the checkpoint declares one (a
compressed-tensors ``kv_cache_scheme``, which makes vLLM pick fp8 by itself, or msModelSlim's
``"kv_cache_type": "C8"``, which makes vllm-ascend store int8). Otherwise SKIPPED.

Formats tested: the asked ones, else those the target can run (Ascend: C8 -- ``--kv-cache-dtype
fp8`` crashes on A2/A3; others: the two FP8 formats). Scales: the checkpoint's (what the engine
would load). 256 greedy tokens per prompt of the reference's prompt set.

``summary["kv_cache_dtype"]`` is the value the serve gate passes as ``--kv-cache-dtype`` when the
run pins none: the best SAFE FP8 format, else ``auto`` -- or ``bfloat16`` when the checkpoint
declares an FP8 ``kv_cache_scheme`` (vLLM honours the scheme unless an explicit dtype other than
auto is given).
``summary["ascend_kv_cache"]`` is ``C8`` when int8_c8 is SAFE, else ``none``.

On a cpu target whose vLLM runs here, every vLLM format is also measured on the engine
(:mod:`adaptgate.kvcache.engine`: the model served with ``auto`` and with each cache, scored
against the reference); a format counts as SAFE only when both say so. FAIL when the format
the checkpoint declares (or that was asked by name, or pinned) is UNSAFE, or when the engine
contradicts a simulated SAFE (both numbers in the reason); PASS otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adaptgate.gate import Gate, GateOutcome, RunContext
from adaptgate.messages import Message, Said, joined, message, said
from adaptgate.record import GateStatus
from adaptgate.settings import KVCACHE

NEW_TOKENS = 256  # greedy tokens per prompt (issue 5: at least 256)
ALL = ("1", "all", "yes", "true")
OFF = ("", "0", "auto", "bf16", "bfloat16", "no", "false")


def declared_kv_cache(model: str) -> str | None:
    """The quantized cache the checkpoint makes the engine use by itself, if any."""
    from adaptgate.checkpoint import open_checkpoint
    from adaptgate.formats.detect import detect_quantization

    ckpt = open_checkpoint(model)
    scheme = detect_quantization(ckpt.config, ckpt.tensors, ckpt.quant_description)
    if scheme.kv_cache_type == "C8":
        return "int8_c8"
    if scheme.kv_cache_scheme:
        return "fp8_e4m3"
    return None


def target_formats(target: str) -> list[str]:
    return ["int8_c8"] if target.startswith("ascend") else ["fp8_e4m3", "fp8_e5m2"]


@dataclass
class Plan:
    """What the gate tests and why. ``formats`` None: skip. ``committed``: the format the
    launch would use (declared by the checkpoint, or asked by name); ``declared`` when the
    checkpoint itself turns it on."""

    formats: list[str] | None
    why: Message
    committed: str | None = None
    declared: bool = False


def wanted(ctx: RunContext, model: str) -> Plan:
    """What to test: a quantized launch dtype the run pins comes first and is committed to (the
    serve gate launches with it whatever the verdict), then what was asked for or declared."""
    from adaptgate.kvcache.api import parse_kv_dtypes

    plan = _asked_or_declared(ctx, model)
    pinned = ctx.settings.kv_cache_dtype
    if pinned is None or pinned.lower() in OFF:
        return plan
    committed = parse_kv_dtypes(pinned)[0]
    formats = list(dict.fromkeys([committed, *(plan.formats or [])]))
    why = (
        message("kvcache.pinned_and", dtype=pinned, why=plan.why)
        if plan.formats
        else message("kvcache.pinned", dtype=pinned)
    )
    return Plan(formats, why, committed)


def _asked_or_declared(ctx: RunContext, model: str) -> Plan:
    from adaptgate.kvcache.api import parse_kv_dtypes

    asked = (ctx.settings.kv_formats or "").strip()
    if asked.lower() in ALL:
        return Plan(target_formats(ctx.settings.target), message("kvcache.asked_all"))
    if asked.lower() not in OFF:
        names = parse_kv_dtypes(asked)
        why = message("kvcache.asked", formats=", ".join(names))
        return Plan(names, why, names[0] if len(names) == 1 else None)
    declared = declared_kv_cache(model)
    if declared is not None:
        formats = list(dict.fromkeys([declared, *target_formats(ctx.settings.target)]))
        return Plan(formats, message("kvcache.declared", format=declared), declared, True)
    return Plan(None, message("kvcache.no_quantized_cache", variable=KVCACHE))


def engine_mode(ctx: RunContext) -> tuple[str, Said | None]:
    """("local", None) when this machine's vLLM can serve the target, else ("off", why not)."""
    from adaptgate.serve.api import vllm_python
    from adaptgate.serve.gate import python_has_vllm

    if ctx.settings.target != "cpu":
        return "off", said("kvcache.engine_off_target", target=ctx.settings.target)
    if ctx.settings.url:
        return "off", said("kvcache.engine_off_url")
    if not python_has_vllm(vllm_python()):
        return "off", said("kvcache.engine_off_no_vllm", python=vllm_python())
    return "local", None


def contradicted(result: Any) -> list[Said]:
    """Formats the simulation judged SAFE and the engine did not, with both numbers."""
    out = []
    for f in result.formats:
        engine = f.on_engine
        if f.verdict == "SAFE" and engine is not None and engine.verdict not in (None, "SAFE"):
            out.append(
                said(
                    "kvcache.contradiction",
                    format=f.format,
                    kl=f"{f.logits.kl_mean:.3g}",
                    verdict=engine.verdict,
                    engine_kl=f"{engine.kl_mean:.3g}",
                    reason=engine.reason,
                )
            )
    return out


def _summary(result: Any, kv_dtype: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "kv_cache_dtype": kv_dtype,
        "ascend_kv_cache": result.recommended_ascend,
        "scales": result.settings.scales,
        "verdicts": {f.format: f.verdict for f in result.formats},
    }
    for f in result.formats:
        summary[f"{f.format}_kl_mean"] = f.logits.kl_mean
        if f.layers_at_risk:
            summary[f"{f.format}_layers_at_risk"] = f.layers_at_risk
        if f.on_engine is not None and f.on_engine.verdict is not None:
            summary[f"{f.format}_engine_verdict"] = f.on_engine.verdict
            summary[f"{f.format}_engine_kl_mean"] = f.on_engine.kl_mean
    engine = result.engine
    if engine is not None:
        summary["engine"] = engine.skipped.model_dump() if engine.skipped else engine.engine
    if result.timings is not None:
        summary["seconds"] = result.timings.total_seconds
    return summary


def _unsafe_reason(f: Any) -> Said:
    if f.verdict == "UNSAFE" or f.on_engine is None:
        return Said.model_validate(f.reason)
    return said("kvcache.on_engine", reason=f.on_engine.reason)


def _verdicts(f: Any) -> Said:
    engine = f.on_engine.verdict if f.on_engine is not None else None
    if engine is None:
        return said("kvcache.format_verdict", format=f.format, verdict=f.verdict)
    return said("kvcache.format_verdict_engine", format=f.format, verdict=f.verdict, engine=engine)


class KVCacheGate(Gate):
    name = "kvcache"
    title = "KV cache (FP8 / INT8 cache simulated on the CPU reference and measured on the engine)"

    def run(self, ctx: RunContext) -> GateOutcome:
        from adaptgate.kvcache.api import run_kvcache
        from adaptgate.kvcache.models import KVCacheConfig

        model = ctx.model_path
        plan = wanted(ctx, model)
        if plan.formats is None:
            return GateOutcome.skipped(plan.why)
        why, committed = plan.why, plan.committed
        out_dir = ctx.gate_dir(self.name)
        mode, no_engine = engine_mode(ctx)
        result = run_kvcache(
            KVCacheConfig(
                model=model,
                kv_dtypes=plan.formats,
                scales="checkpoint",
                new_tokens=NEW_TOKENS,
                out=out_dir,
                engine=mode,
                engine_max_model_len=ctx.settings.max_model_len,
            ),
            ctx.out,
        )
        kv_dtype = result.recommended_kv_cache_dtype
        if kv_dtype == "auto" and plan.declared and str(committed).startswith("fp8"):
            kv_dtype = "bfloat16"  # an explicit dtype overrides the checkpoint's kv_cache_scheme
        summary = _summary(result, kv_dtype)
        if no_engine:
            summary["engine"] = said("kvcache.engine_not_measured", why=no_engine).model_dump()
        artifacts = [out_dir / a for a in result.artifacts]
        verdicts = joined([_verdicts(f) for f in result.formats], "text.list")
        report = result.format(committed) if committed else None
        done = {"summary": summary, "result": result, "artifacts": artifacts}
        if contra := contradicted(result):
            reason = message("kvcache.contradicts", formats=joined(contra))
            return GateOutcome.said(GateStatus.FAIL, reason, **done)
        if report is not None and report.combined_verdict == "UNSAFE":
            reason = message(
                "kvcache.committed_unsafe",
                why=why,
                format=committed,
                reason=_unsafe_reason(report),
                dtype=kv_dtype,
            )
            return GateOutcome.said(GateStatus.FAIL, reason, **done)
        # the recommendation is the kvcache run's sentence (kvcache.api.recommend)
        reason = message(
            "kvcache.verdict_override" if kv_dtype == "bfloat16" else "kvcache.verdict",
            why=why,
            verdicts=verdicts,
            recommendation=result.recommendation,
        )
        return GateOutcome.said(GateStatus.PASS, reason, **done)
