"""``run_kvcache``: the one call behind ``adaptgate kvcache`` and the pipeline's KV-cache gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.errors import UsageError
from adaptgate.kvcache.formats import FORMAT_NAMES, KV_FORMATS, KVFormat
from adaptgate.kvcache.models import KVCacheConfig
from adaptgate.kvcache.scales import ScaleMode, ScaleSet
from adaptgate.kvcache.verdict import KVThresholds

if TYPE_CHECKING:
    from adaptgate.console import Output
    from adaptgate.kvcache.models import FormatReport, KVCacheResult
    from adaptgate.kvcache.run import ModelShape, Simulation
    from adaptgate.kvcache.scan import LayerScan
    from adaptgate.kvcache.sim import Arm

RESULT_FILE = "kvcache.json"
PLOT_FILE = "kvcache_outliers.png"
SCALES_DIR = "scales"
# vLLM: prefer the finer format among the SAFE ones
VLLM_PREFERENCE = ("fp8_e4m3", "fp8_e5m2")


def parse_kv_dtypes(spec: str) -> list[str]:
    """``fp8_e4m3,int8_c8`` -> names (``fp8`` is vLLM's alias of ``fp8_e4m3``)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UsageError("no KV-cache dtype to test", fix=f"name some of: {','.join(FORMAT_NAMES)}")
    aliases = {"fp8": "fp8_e4m3", "int8": "int8_c8", "c8": "int8_c8"}
    out = [aliases.get(n.lower(), n.lower()) for n in names]
    for name in out:
        KV_FORMATS.get(name)
    return out


def _scale_sets(
    cfg: KVCacheConfig, formats: list[KVFormat], session: object, shape: ModelShape,
    prefixes: list[str], calibration: object,
) -> list[ScaleSet]:  # fmt: skip
    from adaptgate.kvcache.scales import (
        Calibration,
        calibrated_scales,
        checkpoint_scales,
        unit_scales,
    )

    channels = shape.kv_heads * shape.head_dim
    sets = []
    for fmt in formats:
        if cfg.scales == "unit":
            sets.append(unit_scales(fmt, shape.num_layers, channels))
        elif cfg.scales == "calibrated":
            assert isinstance(calibration, Calibration)
            sets.append(calibrated_scales(fmt, calibration))
        else:
            sets.append(checkpoint_scales(fmt, session.ckpt, prefixes, channels))  # type: ignore[attr-defined]
    return sets


def _scan_summary(scans: list[LayerScan], name: str) -> dict[str, float | int]:
    elements = saturated = 0
    flushed = rel = clip = overflow = 0.0
    for ls in scans:
        f = ls.formats[name]
        for ts in (f.k, f.v):
            elements += ts.elements
            saturated += ts.saturated_total
            share = 1.0 / ts.elements if ts.elements else 0.0
            flushed = max(flushed, ts.flushed_total * share)
            overflow = max(overflow, ts.overflow_total * share)
            rel = max(rel, ts.rel_rms_error)
        clip = max(clip, f.amax_scaled / f.limit)
    return {
        "elements": elements,
        "saturated": saturated,
        "saturated_fraction": saturated / elements if elements else 0.0,
        "overflow_fraction": overflow,
        "flushed_fraction": flushed,
        "rel_rms_error": rel,
        "clip_ratio": clip,
    }


def _report(
    fmt: KVFormat,
    arm: Arm,
    sim: Simulation,
    scans: list[LayerScan],
    th: KVThresholds,
    refused: str | None = None,
) -> FormatReport:
    from adaptgate.kvcache.degeneration import summarize
    from adaptgate.kvcache.models import FormatReport, ScaleReport, ScanSummary
    from adaptgate.kvcache.verdict import decide, judge_layer, reason_text, repetition_limit
    from adaptgate.metrics.logits import generation_metrics

    ss = arm.scales
    for ls in scans:
        judge_layer(ls, ls.formats[fmt.name], fmt, th)
    at_risk = [ls.name for ls in scans if ls.formats[fmt.name].at_risk]
    run = sim.formats[fmt.name]
    logits = run.logits.result()
    per_step = [acc.result() for acc in run.per_step]
    generation = generation_metrics(list(zip(sim.baseline, run.tokens, strict=True)))
    degeneration, increase, degenerated = summarize(run.tokens, sim.baseline, repetition_limit(th))
    summary = _scan_summary(scans, fmt.name)
    values: dict[str, float | None] = {
        "saturated_fraction": float(summary["saturated_fraction"]),
        "overflow_fraction": float(summary["overflow_fraction"]),
        "clip_ratio": float(summary["clip_ratio"]),
        "layers_at_risk": float(len(at_risk)),
        "kl_mean": logits.kl_mean,
        "kl_max": logits.kl_max,
        "top1_agreement": logits.top1_agreement,
        "exact_match_rate": generation.exact_match_rate,
        "repetition_increase": increase,
        "degenerated_share": degenerated,
        "nonfinite_steps": float(run.nonfinite),
    }
    verdict, checks = decide(values, th, fmt.name)
    notes = list(ss.notes) + ([refused] if refused else [])
    if summary["saturated"]:
        notes.insert(
            0,
            f"{summary['saturated']} elements ({summary['saturated_fraction']:.2g}) clipped, "
            f"up to {summary['clip_ratio']:.3g}x the largest code",
        )
    per_channel = not fmt.is_fp8
    scales = ScaleReport(
        source=ss.source,
        per_channel=per_channel,
        k=[float(s.k.max()) for s in ss.layers],
        v=[float(s.v.max()) for s in ss.layers],
        notes=ss.notes,
    )
    return FormatReport(
        format=fmt.name,
        title=fmt.title,
        engine=fmt.engine,
        prefill=arm.prefill,
        how_enabled=fmt.how_enabled,
        vllm_flag=fmt.vllm_flag,
        deployable=refused is None,
        scales=scales,
        verdict=verdict,
        reason=reason_text(verdict, checks, at_risk, notes),
        checks=checks,
        layers_at_risk=at_risk,
        scan=ScanSummary(**summary),
        logits=logits,
        kl_per_step=[r.kl_mean for r in per_step],
        top1_per_step=[r.top1_agreement for r in per_step],
        generation=generation,
        degeneration=degeneration,
        repetition_increase=increase,
        degenerated_share=degenerated,
        nonfinite_steps=run.nonfinite,
    )


def recommend(reports: list[FormatReport], scales: ScaleMode) -> tuple[str, str, str]:
    """(vLLM --kv-cache-dtype, Ascend cache, the sentence)."""
    by_name = {r.format: r for r in reports}
    safe = [
        n
        for n in VLLM_PREFERENCE
        if n in by_name and by_name[n].combined_verdict == "SAFE" and by_name[n].deployable
    ]
    vllm = safe[0] if safe else "auto"
    c8 = by_name.get("int8_c8")
    ascend = "C8" if c8 is not None and c8.combined_verdict == "SAFE" else "none"
    tested = [n for n in VLLM_PREFERENCE if n in by_name]
    if vllm != "auto":
        text = f"vLLM: --kv-cache-dtype {vllm}"
        if scales == "calibrated" and vllm == "fp8_e4m3":
            text += " with the calibrated k/v scales merged into the checkpoint"
    elif tested:
        text = (
            "vLLM: --kv-cache-dtype auto (no deployable FP8 cache is SAFE: "
            + ", ".join(
                f"{n} {by_name[n].combined_verdict}"
                + ("" if by_name[n].deployable else " but refused")
                for n in tested
            )
            + ")"
        )
    else:
        text = "vLLM: not tested"
    if c8 is not None:
        text += "; vllm-ascend: " + (
            "C8 int8 cache with the calibrated kv_cache_scale/offset"
            if ascend == "C8" and scales == "calibrated"
            else ("C8 int8 cache" if ascend == "C8" else f"bf16 cache (C8 {c8.combined_verdict})")
        )
    return vllm, ascend, text


def _check_model(model: str) -> None:
    """The checkpoint exists and its attention caches per-head K/V (not an MLA latent)."""
    from adaptgate.checkpoint import open_checkpoint

    cfg = open_checkpoint(model).text_config()
    if cfg.get("kv_lora_rank"):
        raise UsageError(
            f"{model} uses MLA: the engines cache its compressed latent, which this "
            "simulation of per-head K/V caches does not model",
            fix="MLA KV-cache formats (fp8_ds_mla) are not simulated yet",
        )


def run_kvcache(cfg: KVCacheConfig, out: Output | None = None) -> KVCacheResult:
    """Simulates every asked format on the CPU reference and judges it (see the package doc)."""
    t0 = time.perf_counter()
    _check_model(cfg.model)  # bad input fails here, before torch and transformers load
    import torch

    from adaptgate.console import progress
    from adaptgate.kvcache.degeneration import repetition_rate, tail_loop
    from adaptgate.kvcache.models import KVCacheResult, ModelInfo, PromptInfo, Settings, Timings
    from adaptgate.kvcache.run import (
        auto_threads,
        calibrate,
        model_shape,
        simulate,
        torch_threads,
    )
    from adaptgate.kvcache.scales import attention_prefixes, engine_refuses
    from adaptgate.kvcache.sim import Arm
    from adaptgate.kvcache.verdict import load_kv_thresholds
    from adaptgate.reference.prompts import builtin_prompts, encode_prompts, load_prompts
    from adaptgate.reference.session import ReferenceSession

    thresholds = load_kv_thresholds(cfg.thresholds_file)
    formats = [KV_FORMATS.get(n) for n in cfg.kv_dtypes]
    prompts = load_prompts(cfg.prompts_file) if cfg.prompts_file else builtin_prompts()
    if out is not None:
        out.status(f"loading {cfg.model} on the CPU reference ({cfg.dtype})")
    session = ReferenceSession(cfg.model, dtype=cfg.dtype, stream=False)
    shape = model_shape(session)
    prefixes = attention_prefixes(session.ckpt, shape.num_layers)
    encoded = encode_prompts(prompts, session.tokenizer)
    threads = cfg.threads or auto_threads(shape)
    load_s = time.perf_counter() - t0
    param_dtype = getattr(torch, shape.model_dtype, torch.bfloat16)
    with torch_threads(threads):
        t1 = time.perf_counter()
        calibration = (
            calibrate(session, shape, encoded).result() if cfg.scales == "calibrated" else None
        )
        cal_s = time.perf_counter() - t1
        sets = _scale_sets(cfg, formats, session, shape, prefixes, calibration)
        arms = [
            Arm(
                ss,
                ss.format.prefill if cfg.prefill == "engine" else cfg.prefill,
                shape.kv_heads,
                shape.head_dim,
                param_dtype,
            )
            for ss in sets
        ]
        with progress(len(encoded) * cfg.new_tokens, "kvcache", unit="tokens") as bar:
            sim = simulate(session, shape, encoded, arms, cfg.new_tokens, tick=bar.advance)
    scans = sim.scan.result(prefixes)
    reports = [
        _report(f, a, sim, scans, thresholds, engine_refuses(f, session.ckpt))
        for f, a in zip(formats, arms, strict=True)
    ]
    engine = None
    if cfg.engine != "off" or cfg.engine_urls:
        from adaptgate.kvcache.engine import Texts, measure

        texts = Texts([e.token_ids for e in encoded], sim.baseline)
        with torch_threads(threads):
            engine = measure(cfg, texts, session, thresholds, out)
        for r in reports:
            r.on_engine = engine.format(r.format)
    vllm, ascend, sentence = recommend(reports, cfg.scales)
    result = KVCacheResult(
        model=ModelInfo(
            path=str(session.ckpt.root),
            architecture=shape.architecture,
            num_layers=shape.num_layers,
            kv_heads=shape.kv_heads,
            head_dim=shape.head_dim,
            attention_bias=shape.attention_bias,
            qk_norm=shape.qk_norm,
            dtype=shape.model_dtype,
        ),
        settings=Settings(
            scales=cfg.scales,
            new_tokens=cfg.new_tokens,
            prompts=len(encoded),
            reference_dtype=cfg.dtype,
            threads=threads,
            thresholds=thresholds.file,
        ),
        prompts=[
            PromptInfo(
                id=e.prompt.id,
                category=e.prompt.category,
                tokens=len(e.token_ids),
                baseline_repetition=repetition_rate(b),
                baseline_loop_period=tail_loop(b),
            )
            for e, b in zip(encoded, sim.baseline, strict=True)
        ],
        formats=reports,
        scan=scans,
        recommended_kv_cache_dtype=vllm,
        recommended_ascend=ascend,
        recommendation=sentence,
        engine=engine,
    )
    if cfg.out is not None:
        result.artifacts = _write_artifacts(cfg, result, sets, prefixes)
    result.timings = Timings(
        load_seconds=round(load_s, 3),
        calibrate_seconds=round(cal_s, 3),
        simulate_seconds=round(sim.seconds, 3),
        total_seconds=round(time.perf_counter() - t0, 3),
    )
    if cfg.out is not None:
        result.write_json(cfg.out / RESULT_FILE)
    return result


def _write_artifacts(
    cfg: KVCacheConfig, result: KVCacheResult, sets: list[ScaleSet], prefixes: list[str]
) -> list[str]:
    from adaptgate.kvcache.scales import write_scales

    assert cfg.out is not None
    cfg.out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if cfg.scales == "calibrated":
        files += write_scales(cfg.out / SCALES_DIR, sets, prefixes)
    if cfg.plot:
        from adaptgate.kvcache.plot import plot_outliers

        files.append(plot_outliers(result, cfg.out / PLOT_FILE))
    return [str(p.relative_to(cfg.out)) for p in files] + [RESULT_FILE]
