"""``run_kvcache``: the one call behind ``adaptgate kvcache`` and the pipeline's KV-cache gate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.errors import UsageError
from adaptgate.kvcache.formats import FORMAT_NAMES, KV_FORMATS, KVFormat
from adaptgate.kvcache.models import KVCacheConfig, KVCacheResult, PromptInfo, WeightUse
from adaptgate.kvcache.scales import ScaleMode, ScaleSet
from adaptgate.kvcache.verdict import KVThresholds
from adaptgate.messages import Said, joined, said

if TYPE_CHECKING:
    from adaptgate.console import Output
    from adaptgate.kvcache.degeneration import Degeneration
    from adaptgate.kvcache.forced import WeightReads
    from adaptgate.kvcache.models import EngineFormat, EngineRun, FormatReport
    from adaptgate.kvcache.run import ModelShape, Simulation
    from adaptgate.kvcache.scan import LayerScan
    from adaptgate.kvcache.sim import Arm
    from adaptgate.reference.session import ReferenceSession

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
    on_engine: EngineFormat | None = None,
) -> FormatReport:
    """The format's measurements and verdict. Without free-running decoding degeneration is not
    measured: a format meeting every measured limit is then RISKY, not SAFE, unless the engine
    measured it (its verdict is combined with this one)."""
    from adaptgate.kvcache.degeneration import summarize
    from adaptgate.kvcache.models import FormatReport, ScaleReport, ScanSummary
    from adaptgate.kvcache.verdict import (
        FREE_RUNNING_METRICS,
        cap_unmeasured,
        decide,
        judge_layer,
        reason_text,
        repetition_limit,
    )
    from adaptgate.metrics.logits import generation_metrics

    ss = arm.scales
    for ls in scans:
        judge_layer(ls, ls.formats[fmt.name], fmt, th)
    at_risk = [ls.name for ls in scans if ls.formats[fmt.name].at_risk]
    run = sim.formats[fmt.name]
    logits = run.logits.result()
    per_step = [acc.result() for acc in run.per_step]
    generation = generation_metrics(list(zip(sim.baseline, run.tokens, strict=True)))
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
        "nonfinite_steps": float(run.nonfinite),
    }
    degeneration: list[Degeneration] = []
    increase = degenerated = None
    not_measured: list[str] = []
    if sim.free_running:
        degeneration, increase, degenerated = summarize(
            run.tokens, sim.baseline, repetition_limit(th)
        )
        values |= {"repetition_increase": increase, "degenerated_share": degenerated}
    else:
        not_measured = [m for m in FREE_RUNNING_METRICS if m in th.unsafe or m in th.risky]
    verdict, checks = decide(values, th, fmt.name)
    measured_elsewhere = on_engine is not None and on_engine.verdict is not None
    verdict = cap_unmeasured(verdict, not_measured, measured_elsewhere)
    notes = list(ss.notes) + ([refused] if refused else [])
    if summary["saturated"]:
        notes.insert(
            0,
            said(
                "kvcache.clipped",
                elements=summary["saturated"],
                fraction=f"{summary['saturated_fraction']:.2g}",
                ratio=f"{summary['clip_ratio']:.3g}",
            ),
        )
    if not_measured:
        notes.insert(
            0,
            said(
                "kvcache.not_measured_engine" if measured_elsewhere else "kvcache.not_measured",
                metrics=", ".join(not_measured),
            ),
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
        not_measured=not_measured,
        on_engine=on_engine,
    )


def recommend(reports: list[FormatReport], scales: ScaleMode) -> tuple[str, str, Said]:
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
        calibrated = scales == "calibrated" and vllm == "fp8_e4m3"
        text = said("kvcache.rec_calibrated" if calibrated else "kvcache.rec_dtype", dtype=vllm)
    elif tested:
        verdicts = [
            said(
                "kvcache.format_verdict" if by_name[n].deployable else "kvcache.rec_refused",
                format=n,
                verdict=by_name[n].combined_verdict,
            )
            for n in tested
        ]
        text = said("kvcache.rec_auto", verdicts=joined(verdicts, "text.list"))
    else:
        text = said("kvcache.rec_untested")
    if c8 is not None:
        if ascend == "C8":
            cache = said(
                "kvcache.rec_c8_calibrated" if scales == "calibrated" else "kvcache.rec_c8"
            )
        else:
            cache = said("kvcache.rec_c8_bf16", verdict=c8.combined_verdict)
        text = said("kvcache.rec_ascend", vllm=text, ascend=cache)
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
    """Simulates every asked format on the CPU reference and judges it (see the package doc).
    Mode full decodes freely on the fully loaded model; teacher-forced (auto: when the model
    does not fit) measures along forced texts in one pass over the weights, streamed or not."""
    t0 = time.perf_counter()
    if cfg.mode == "full" and cfg.stream:
        raise UsageError(
            "--mode full decodes freely, which needs the model loaded in full",
            fix="use --mode teacher-forced with --stream-layers, or leave out --stream-layers",
        )
    _check_model(cfg.model)  # bad input fails here, before torch and transformers load
    from adaptgate.kvcache.models import ModelInfo, Settings, Timings
    from adaptgate.kvcache.run import auto_threads, model_shape, torch_threads
    from adaptgate.kvcache.scales import attention_prefixes, engine_refuses
    from adaptgate.kvcache.verdict import load_kv_thresholds
    from adaptgate.reference.memory import peak_rss_bytes
    from adaptgate.reference.session import ReferenceSession

    thresholds = load_kv_thresholds(cfg.thresholds_file)
    formats = [KV_FORMATS.get(n) for n in cfg.kv_dtypes]
    if out is not None:
        out.status(f"loading {cfg.model} on the CPU reference ({cfg.dtype})")
    session = ReferenceSession(
        cfg.model, dtype=cfg.dtype, stream=False if cfg.mode == "full" else cfg.stream
    )
    forced = cfg.mode == "teacher-forced" or session.stream
    shape = model_shape(session)
    prefixes = attention_prefixes(session.ckpt, shape.num_layers)
    threads = cfg.threads or auto_threads(shape)
    load_s = time.perf_counter() - t0
    with torch_threads(threads):
        run = (_run_forced if forced else _run_full)(cfg, session, shape, formats, prefixes, out)
        engine = _engine(cfg, run, session, thresholds, out)
    scans = run.sim.scan.result(prefixes)
    reports = []
    for f, a in zip(formats, run.arms, strict=True):
        on_engine = engine.format(f.name) if engine is not None else None
        reports.append(
            _report(f, a, run.sim, scans, thresholds, engine_refuses(f, session.ckpt), on_engine)
        )
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
            mode="teacher-forced" if forced else "full",
            loading="streamed" if session.stream else "full",
            new_tokens=cfg.new_tokens,
            prompts=len(run.prompts),
            reference_dtype=cfg.dtype,
            threads=threads,
            thresholds=thresholds.file,
        ),
        prompts=run.prompts,
        formats=reports,
        scan=scans,
        recommended_kv_cache_dtype=vllm,
        recommended_ascend=ascend,
        recommendation=sentence,
        engine=engine,
        weights=WeightUse(
            passes=run.reads.passes,
            bytes_read=run.reads.bytes_read,
            peak_rss_bytes=peak_rss_bytes(),
        ),
    )
    if cfg.out is not None:
        sets = [a.scales for a in run.arms]
        result.artifacts = _write_artifacts(cfg, result, sets, prefixes)
    result.timings = Timings(
        load_seconds=round(load_s, 3),
        calibrate_seconds=round(run.calibrate_seconds, 3),
        simulate_seconds=round(run.sim.seconds, 3),
        total_seconds=round(time.perf_counter() - t0, 3),
    )
    if cfg.out is not None:
        result.write_json(cfg.out / RESULT_FILE)
    return result


@dataclass
class _Run:
    """A measurement's outputs: the simulation, its arms, the texts and what it read."""

    sim: Simulation
    arms: list[Arm]
    prompts: list[PromptInfo]
    continuations: list[list[int]]  # per prompt: the text the engine is fed after the prompt
    prompt_ids: list[list[int]]
    reads: WeightReads
    calibrate_seconds: float = 0.0


def _arms(cfg: KVCacheConfig, sets: list[ScaleSet], shape: ModelShape) -> list[Arm]:
    import torch

    from adaptgate.kvcache.sim import Arm

    return [
        Arm(
            ss,
            ss.format.prefill if cfg.prefill == "engine" else cfg.prefill,
            shape.kv_heads,
            shape.head_dim,
            getattr(torch, shape.model_dtype, torch.bfloat16),  # C8 scales: the model dtype
        )
        for ss in sets
    ]


def _run_full(
    cfg: KVCacheConfig, session: ReferenceSession, shape: ModelShape, formats: list[KVFormat],
    prefixes: list[str], out: Output | None,
) -> _Run:  # fmt: skip
    """Calibration, free-running decoding and the teacher-forced pass (:mod:`.run`)."""
    from adaptgate.console import progress
    from adaptgate.kvcache.degeneration import repetition_rate, tail_loop
    from adaptgate.kvcache.forced import full_load_reads
    from adaptgate.kvcache.run import calibrate, simulate
    from adaptgate.reference.prompts import builtin_prompts, encode_prompts, load_prompts

    del out
    prompts = load_prompts(cfg.prompts_file) if cfg.prompts_file else builtin_prompts()
    encoded = encode_prompts(prompts, session.tokenizer)
    t1 = time.perf_counter()
    calibration = (
        calibrate(session, shape, encoded).result() if cfg.scales == "calibrated" else None
    )
    cal_s = time.perf_counter() - t1
    arms = _arms(cfg, _scale_sets(cfg, formats, session, shape, prefixes, calibration), shape)
    with progress(len(encoded) * cfg.new_tokens, "kvcache", unit="tokens") as bar:
        sim = simulate(session, shape, encoded, arms, cfg.new_tokens, tick=bar.advance)
    infos = [
        PromptInfo(
            id=e.prompt.id,
            category=e.prompt.category,
            tokens=len(e.token_ids),
            baseline_repetition=repetition_rate(b),
            baseline_loop_period=tail_loop(b),
        )
        for e, b in zip(encoded, sim.baseline, strict=True)
    ]
    return _Run(sim, arms, infos, sim.baseline, [e.token_ids for e in encoded],
                full_load_reads(session.lm), cal_s)  # fmt: skip


def _run_forced(
    cfg: KVCacheConfig, session: ReferenceSession, shape: ModelShape, formats: list[KVFormat],
    prefixes: list[str], out: Output | None,
) -> _Run:  # fmt: skip
    """One pass over the weights along forced texts (:mod:`.forced`), calibrating on the way."""
    from adaptgate.console import progress
    from adaptgate.kvcache.degeneration import repetition_rate, tail_loop
    from adaptgate.kvcache.forced import Calibrating, forced_simulation
    from adaptgate.kvcache.scales import calibrated_scales, unit_scales
    from adaptgate.kvcache.texts import builtin_texts, encode_builtin, split_prompts
    from adaptgate.reference.prompts import encode_prompts, load_prompts

    if cfg.prompts_file:
        encoded = encode_prompts(load_prompts(cfg.prompts_file), session.tokenizer)
        texts = split_prompts(encoded, cfg.new_tokens)
        names = [(e.prompt.id, e.prompt.category) for e in encoded]
    else:
        builtin = builtin_texts()
        texts = encode_builtin(builtin, session.tokenizer, cfg.new_tokens)
        names = [(b.id, b.category) for b in builtin]
    channels = shape.kv_heads * shape.head_dim
    calibrating = cfg.scales == "calibrated"
    sets = (
        [unit_scales(f, shape.num_layers, channels) for f in formats]  # set layer by layer
        if calibrating
        else _scale_sets(cfg, formats, session, shape, prefixes, None)
    )
    arms = _arms(cfg, sets, shape)
    calibration = Calibrating.of(arms, shape.num_layers) if calibrating else None

    if out is not None:
        out.status(f"kvcache: teacher-forced, {'layer-streamed' if session.stream else 'loaded'}")
    with progress(shape.num_layers + 2, "kvcache", unit="units") as bar:
        sim, reads = forced_simulation(
            session, shape, texts, arms,
            calibration=calibration, tick=bar.advance,
        )  # fmt: skip
    if calibration is not None:  # the same per-layer values, with the set's notes
        for a in arms:
            a.scales = calibrated_scales(a.scales.format, calibration.acc.result())
    infos = [
        PromptInfo(
            id=name,
            category=category,
            tokens=len(t.prompt),
            baseline_repetition=repetition_rate(b),
            baseline_loop_period=tail_loop(b),
        )
        for (name, category), t, b in zip(names, texts, sim.baseline, strict=True)
    ]
    sim.free_running = False
    return _Run(sim, arms, infos, [t.continuation for t in texts], [t.prompt for t in texts],
                reads)  # fmt: skip


def _engine(
    cfg: KVCacheConfig, run: _Run, session: ReferenceSession, th: KVThresholds,
    out: Output | None,
) -> EngineRun | None:  # fmt: skip
    """The engine's measurement when asked, on the texts the simulation was fed."""
    if cfg.engine == "off" and not cfg.engine_urls:
        return None
    from adaptgate.kvcache.engine import Texts, measure
    from adaptgate.kvcache.models import EngineRun

    if session.stream:
        return EngineRun(
            engine="vLLM CPU (local)" if cfg.engine == "local" else "--engine-url",
            skipped=said("kvcache.engine_streamed"),
        )
    return measure(cfg, Texts(run.prompt_ids, run.continuations), session, th, out)


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
