"""The KV cache measured on the engine itself, beside the simulation.

When the target engine runs here (vLLM CPU serves ``--kv-cache-dtype fp8_e4m3``/``fp8_e5m2``)
or servers are given by URL (``adaptgate kvcache --engine-url auto=URL --engine-url
fp8_e4m3=URL``; on Ascend a C8 server is given as ``int8_c8=URL``), the same model is served
with ``auto`` and with each candidate cache, and every server gets the same texts:

- **teacher-forced**: the prompt followed by the reference's greedy continuation (the
  simulation's baseline, ``new_tokens`` long) as one prompt, with vLLM's ``prompt_logprobs``:
  at every continuation position the engine's top-k distribution, scored against the FP32
  reference's full distribution -- ``KL(engine || reference)`` over the top-k plus one bucket
  for the rest (a lower bound, as the served-model check), its argmax, and the forced token's
  log-probability. vLLM V1 writes the cache before attending (the CPU backend too:
  ``do_kv_cache_update`` then ``cpu_attention_with_kv_cache``), so one prefill already reads
  every earlier token's K/V back from the quantized cache;
- **free-running**: ``new_tokens`` greedy tokens from the prompt alone (``ignore_eos``).

A candidate is judged by what its cache adds on the same engine: ``kl_mean`` is its KL minus
``auto``'s (the engine's own bf16 error cancels), ``top1_agreement`` compares its forced
argmax with ``auto``'s and ``exact_match_rate``, ``repetition_increase`` and
``degenerated_share`` its greedy tokens with ``auto``'s -- under the simulation's thresholds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaptgate.client import Client, token_ids, top_ids
from adaptgate.errors import AdaptgateError, EngineUnavailable, UsageError
from adaptgate.kvcache.degeneration import summarize
from adaptgate.kvcache.models import Endpoint, EngineArm, EngineFormat, EngineRun
from adaptgate.kvcache.verdict import KVThresholds, decide, reason_text, repetition_limit
from adaptgate.messages import said
from adaptgate.metrics.logits import generation_metrics, topk_kl

if TYPE_CHECKING:
    import torch

    from adaptgate.console import Output
    from adaptgate.kvcache.models import KVCacheConfig
    from adaptgate.reference.session import ReferenceSession

AUTO = "auto"


# a server for one --kv-cache-dtype: yields its endpoint, stops it on exit
Launcher = Callable[[str], AbstractContextManager[Endpoint]]


def url_launcher(urls: dict[str, str]) -> Launcher:
    """Servers given by URL, keyed by ``auto`` or a format name."""

    @contextmanager
    def launch(name: str) -> Iterator[Endpoint]:
        url = urls.get(name)
        if url is None:
            raise EngineUnavailable(f"no server given for {name} (--engine-url {name}=URL)")
        try:
            models = Client(url, timeout_s=30.0).model_ids()
        except AdaptgateError as exc:
            raise EngineUnavailable(exc.message) from None
        if not models:
            raise EngineUnavailable(f"{url} serves no model")
        yield Endpoint(url=url, model=models[0], managed=False)

    return launch


def local_launcher(
    model: str,
    work_dir: Path,
    *,
    python: str | None = None,
    cpus: tuple[int, ...] | None = None,
    max_model_len: int | None = None,
    out: Output | None = None,
) -> Launcher:
    """vLLM started on this machine (cpu target) for each cache, one at a time."""
    from adaptgate.serve.api import serve_model
    from adaptgate.serve.models import PlanOptions, ServeOptions

    @contextmanager
    def launch(name: str) -> Iterator[Endpoint]:
        flag = AUTO if name == AUTO else _vllm_flag(name)
        options = ServeOptions(
            plan=PlanOptions(
                model=model,
                target="cpu",
                kv_cache_dtype=flag,
                max_model_len=max_model_len,
                port=0,
            ),
            run_dir=work_dir / name,
            vllm_python=python,
            cpus=cpus,
        )
        try:
            result, server = serve_model(options, out, keep=True)
        except AdaptgateError as exc:
            raise EngineUnavailable(exc.one_line()) from None
        if server is None:
            raise EngineUnavailable(f"vLLM with --kv-cache-dtype {flag} did not start: "
                                    f"{result.reason}")  # fmt: skip
        try:
            yield Endpoint(
                url=result.url,
                model=result.plan.served_model_name,
                managed=True,
                log=result.log,
                startup_seconds=result.startup_seconds,
            )
        finally:
            server.stop()

    return launch


def _vllm_flag(name: str) -> str:
    from adaptgate.kvcache.formats import KV_FORMATS

    flag = KV_FORMATS.get(name).vllm_flag
    if flag is None:
        raise EngineUnavailable(f"{name} has no vLLM --kv-cache-dtype: give its server by URL")
    return flag


def parse_engine_urls(items: list[str]) -> dict[str, str]:
    """``["auto=URL", "fp8_e4m3=URL"]`` -> ``{name: url}``; ``auto`` is required."""
    from adaptgate.kvcache.api import parse_kv_dtypes

    urls: dict[str, str] = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not url.strip():
            raise UsageError(
                f"--engine-url {item!r} is not NAME=URL",
                fix="e.g. --engine-url auto=http://127.0.0.1:8000",
            )
        name = name.strip().lower()
        key = AUTO if name == AUTO else parse_kv_dtypes(name)[0]
        urls[key] = url.strip()
    if urls and AUTO not in urls:
        raise UsageError(
            "--engine-url needs the baseline server too",
            fix="add --engine-url auto=URL (the same model with --kv-cache-dtype auto)",
        )
    return urls


@dataclass
class Texts:
    """Per prompt: its ids and the reference's greedy continuation (the forced text)."""

    prompts: list[list[int]]
    continuations: list[list[int]]


@dataclass
class _Sample:
    forced: list[list[dict[int, float]]]  # per prompt, per continuation position: top-k
    forced_token: list[list[float | None]]  # the forced token's log-probability
    greedy: list[list[int]]
    seconds: float


def _sample(endpoint: Endpoint, texts: Texts, top_k: int) -> _Sample:
    client = Client(endpoint.url, timeout_s=600.0)
    t0 = time.perf_counter()

    def forced(k: int) -> tuple[list[dict[int, float]], list[float | None]]:
        prompt, cont = texts.prompts[k], texts.continuations[k]
        done = client.complete(endpoint.model, prompt + cont, 1, top_k)
        rows = done.prompt_logprobs or []
        if len(rows) < len(prompt) + len(cont):
            raise EngineUnavailable(
                f"{endpoint.url} returned no prompt_logprobs (vLLM's extension is needed)"
            )
        tops, chosen = [], []
        for t, token in enumerate(cont, start=len(prompt)):
            top = top_ids(rows[t] or {}) or {}
            tops.append(top)
            chosen.append(top.get(token))
        return tops, chosen

    def greedy(k: int) -> list[int]:
        n = len(texts.continuations[k])
        done = client.complete(endpoint.model, texts.prompts[k], n, 1, ignore_eos=True)
        ids = token_ids(done.tokens)
        if ids is None:
            raise EngineUnavailable(f"{endpoint.url} did not return token ids")
        return ids

    n = len(texts.prompts)
    with ThreadPoolExecutor(max_workers=2 * n) as pool:
        f_jobs = [pool.submit(forced, k) for k in range(n)]
        g_jobs = [pool.submit(greedy, k) for k in range(n)]
        f_out = [j.result() for j in f_jobs]
        g_out = [j.result() for j in g_jobs]
    return _Sample(
        forced=[f for f, _ in f_out],
        forced_token=[c for _, c in f_out],
        greedy=g_out,
        seconds=time.perf_counter() - t0,
    )


def reference_logprobs(session: ReferenceSession, texts: Texts, k: int) -> torch.Tensor:
    """The reference's log-softmax (float64) at prompt ``k``'s continuation positions."""
    import torch

    prompt, cont = texts.prompts[k], texts.continuations[k]
    ids = torch.tensor([prompt + cont], dtype=torch.long)
    with torch.inference_mode():
        logits = session.lm.model(input_ids=ids, use_cache=False).logits[0]
    # position t's logits predict token t + 1: the continuation is predicted from len(prompt)-1
    rows = logits[len(prompt) - 1 : len(prompt) + len(cont) - 1]
    return torch.log_softmax(rows.to(torch.float64), dim=-1)


@dataclass
class _Scores:
    """One arm's teacher-forced scores against the reference, accumulated prompt by prompt."""

    kls: list[float]
    top1: list[bool]
    diffs: list[float]

    def add(self, sample: _Sample, k: int, ref: torch.Tensor, cont: list[int]) -> None:
        for t, top in enumerate(sample.forced[k]):
            if not top:
                continue
            self.kls.append(topk_kl(top, ref[t]))
            self.top1.append(max(top, key=lambda i: top[i]) == int(ref[t].argmax()))
            chosen = sample.forced_token[k][t]
            if chosen is not None:
                self.diffs.append(abs(chosen - float(ref[t][cont[t]])))


def _arm(name: str, endpoint: Endpoint, sample: _Sample, s: _Scores, texts: Texts) -> EngineArm:
    if not s.kls:
        raise EngineUnavailable(f"{endpoint.url} returned no log-probabilities to score")
    gen = generation_metrics(list(zip(texts.continuations, sample.greedy, strict=True)))
    return EngineArm(
        kv_cache_dtype=name,
        endpoint=endpoint,
        positions=len(s.kls),
        kl_mean=sum(s.kls) / len(s.kls),
        kl_max=max(s.kls),
        top1_agreement=sum(s.top1) / len(s.top1),
        logprob_abs_diff_mean=sum(s.diffs) / len(s.diffs) if s.diffs else float("nan"),
        exact_match_rate=gen.exact_match_rate,
        seconds=round(sample.seconds, 3),
    )


def _argmaxes(sample: _Sample) -> list[list[int | None]]:
    return [[max(t, key=lambda i: t[i]) if t else None for t in p] for p in sample.forced]


def judge(
    name: str,
    arm: EngineArm,
    sample: _Sample,
    auto: EngineArm,
    auto_sample: _Sample,
    th: KVThresholds,
) -> EngineFormat:
    """The candidate against ``auto`` on the same engine, under the simulation's limits."""
    pairs = [
        (a, b)
        for pa, pb in zip(_argmaxes(auto_sample), _argmaxes(sample), strict=True)
        for a, b in zip(pa, pb, strict=True)
        if a is not None and b is not None
    ]
    gen = generation_metrics(list(zip(auto_sample.greedy, sample.greedy, strict=True)))
    _, increase, degenerated = summarize(sample.greedy, auto_sample.greedy, repetition_limit(th))
    values: dict[str, float | None] = {
        "kl_mean": max(0.0, arm.kl_mean - auto.kl_mean),
        "top1_agreement": sum(a == b for a, b in pairs) / len(pairs) if pairs else None,
        "exact_match_rate": gen.exact_match_rate,
        "repetition_increase": increase,
        "degenerated_share": degenerated,
    }
    verdict, checks = decide(values, th, f"{name} on the engine")

    kl = said(
        "kvcache.engine_kl", kl=f"{arm.kl_mean:.3g}", format=name, auto_kl=f"{auto.kl_mean:.3g}"
    )
    reason = reason_text(verdict, checks, [], [kl])
    return EngineFormat(
        format=name,
        arm=arm,
        kl_mean=values["kl_mean"],
        top1_agreement=values["top1_agreement"],
        exact_match_rate=values["exact_match_rate"],
        repetition_increase=increase,
        degenerated_share=degenerated,
        verdict=verdict,
        checks=checks,
        reason=reason,
    )


def measure_on_engine(
    launcher: Launcher,
    where: str,
    formats: list[str],
    texts: Texts,
    session: ReferenceSession,
    th: KVThresholds,
    out: Output | None = None,
) -> EngineRun:
    """``auto`` first (no baseline: nothing measured, ``skipped`` says why), then each format."""
    t0 = time.perf_counter()
    run = EngineRun(engine=where)
    samples: dict[str, tuple[Endpoint, _Sample]] = {}
    for name in [AUTO, *formats]:
        if out is not None:
            out.status(f"kvcache: measuring --kv-cache-dtype {name} on {where}")
        try:
            with launcher(name) as endpoint:
                samples[name] = (endpoint, _sample(endpoint, texts, run.top_k))
        except AdaptgateError as exc:  # no start, or the server failed a request
            if name == AUTO:
                run.skipped = said("kvcache.engine_no_baseline", error=exc.message)
                run.seconds = round(time.perf_counter() - t0, 3)
                return run
            run.formats.append(
                EngineFormat(
                    format=name,
                    error=exc.message,
                    reason=said("kvcache.engine_format_failed", error=exc.message),
                )
            )
    scores = {n: _Scores([], [], []) for n in samples}
    for k, cont in enumerate(texts.continuations):  # one reference forward per prompt
        ref = reference_logprobs(session, texts, k)
        for n, (_, sample) in samples.items():
            scores[n].add(sample, k, ref, cont)
    try:
        arms = {n: _arm(n, e, smp, scores[n], texts) for n, (e, smp) in samples.items()}
    except EngineUnavailable as exc:
        run.skipped = said("kvcache.engine_failed", error=exc.message)
        run.formats = []
        return run
    run.auto = arms[AUTO]
    for name in formats:
        if name in arms:
            run.formats.append(judge(name, arms[name], samples[name][1], arms[AUTO],
                                     samples[AUTO][1], th))  # fmt: skip
    run.formats.sort(key=lambda f: formats.index(f.format))
    run.seconds = round(time.perf_counter() - t0, 3)
    return run


def measure(
    cfg: KVCacheConfig,
    texts: Texts,
    session: ReferenceSession,
    th: KVThresholds,
    out: Output | None = None,
) -> EngineRun:
    """The servers ``cfg`` names (``engine_urls``), else vLLM started here for each cache."""
    if cfg.engine_urls:
        launcher, where = url_launcher(cfg.engine_urls), "--engine-url"
    else:
        from adaptgate.serve.cpus import split_cpus

        work = cfg.out / "engine" if cfg.out else Path(tempfile.mkdtemp(prefix="adaptgate-kv-"))
        split = split_cpus()
        launcher = local_launcher(
            cfg.model,
            work,
            cpus=split.server if split else None,
            max_model_len=cfg.engine_max_model_len,
            out=out,
        )
        where = "vLLM CPU (local)"
    return measure_on_engine(launcher, where, cfg.kv_dtypes, texts, session, th, out)
