"""The served-model check: a server's greedy continuation scored under the reference.

The server is asked FIRST (greedy, top-k logprobs, the reference's token ids as the prompt);
then the reference scores prompt + that continuation teacher-forced, in one pass over its weights
(:func:`check_served_forced`, what the precision gate runs). Every position then has the same
context on both sides. ``check_served`` compares a server with an existing dump instead: with a
greedy dump only the positions up to the first disagreement share their context, and only those
are scored (the older, weaker check; ``adaptgate precision --source MODEL`` scores forced).

Per prompt, at every position with the same context (``scored_positions``):

- the served token's rank under the reference (1 = the reference's argmax) and whether it is in
  the reference's top-k (``served_in_reference_topk``, the share of positions);
- ``KL(server || reference)`` over the server's top-k tokens plus one bucket for the rest of the
  vocabulary, with the reference's full distribution (a lower bound of the true KL);
- first divergence: the first position where the served token is not the reference's argmax
  (``first_mismatch``); exact-match rate: positions before it / tokens; there, whether the
  served token is in the reference's top-k and the reference's argmax in the server's top-k
  (vLLM's own ``check_logprobs_close`` criterion), ``first_mismatch_in_topk`` the share of
  diverging prompts that satisfy it (1.0 if none);
- |logprob difference| of the served token, over the positions before the first divergence (the
  matched tokens the thresholds were calibrated on);
- prompt log-probabilities, when the server returns them (vLLM's ``prompt_logprobs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from adaptgate.client import Client, Completion, token_ids, top_ids
from adaptgate.errors import UsageError
from adaptgate.messages import said
from adaptgate.metrics.limits import evaluate
from adaptgate.metrics.logits import topk_kl
from adaptgate.precision.models import (
    DumpSummary,
    ServedConfig,
    ServedMetrics,
    ServedPrompt,
    ServedResult,
)
from adaptgate.precision.thresholds import failed_reason, load_thresholds
from adaptgate.reference.dump import DumpReader, gen_key, open_dump, prompt_key

if TYPE_CHECKING:
    from adaptgate.reference.api import ReferenceConfig
    from adaptgate.reference.dump import ReferenceDump


@dataclass
class Served:
    """What the server answered: its model name, the top-k asked, one completion per prompt."""

    model: str
    top_k: int
    completions: list[Completion]


@dataclass
class _Scores:
    diffs: list[float]
    kls: list[float]
    prompt_diffs: list[float]
    in_topk: list[bool]


def ask_server(cfg: ServedConfig, prompts: list[list[int]], max_tokens: list[int]) -> Served:
    """Each prompt's greedy continuation with top-k logprobs; refuses a server that does not
    return token ids (the continuation could not be scored)."""
    client = Client(cfg.url, timeout_s=cfg.timeout)
    model = cfg.model
    if model is None:
        served = client.model_ids()
        if not served:
            raise UsageError(f"{cfg.url} serves no model", fix="pass --model NAME")
        model = served[0]
    top_k = min(cfg.top_k or 20, 20)
    completions = []
    for ids, count in zip(prompts, max_tokens, strict=True):
        completion = client.complete(model, ids, max(1, count), top_k)
        if token_ids(completion.tokens) is None:
            raise UsageError(
                "the server did not return token ids (`return_tokens_as_token_ids`)",
                fix="use vLLM (or a server that returns tokens as token_id:N) for this check",
            )
        completions.append(completion)
    return Served(model=model, top_k=top_k, completions=completions)


def _same_context(ref: list[int], srv: list[int]) -> int:
    """Positions whose context both sides share: all of them when the reference scored the
    server's own tokens; up to and including the first difference otherwise."""
    shared = min(len(ref), len(srv))
    first = next((i for i in range(shared) if ref[i] != srv[i]), None)
    return shared if first is None else first + 1


def _compare_prompt(
    reader: DumpReader, k: int, completion: Completion, top_k: int
) -> tuple[ServedPrompt, _Scores]:
    import torch

    rec = reader.meta.prompts[k]
    ref = rec.generated_ids
    srv = token_ids(completion.tokens) or []
    scored = _same_context(ref, srv)
    argmax = reader.argmax(k)[:scored]
    first = next((t for t in range(scored) if srv[t] != argmax[t]), None)
    if first is None and len(ref) != len(srv):  # the greedy reference stopped elsewhere
        first = scored
    row = ServedPrompt(
        id=rec.id,
        reference_tokens=len(ref),
        server_tokens=len(srv),
        matched_tokens=len(srv) if first is None else first,
        first_mismatch=first,
        scored_positions=scored,
        server_text=completion.text,
    )
    scores = _Scores([], [], [], [])
    ranks: list[int] = []
    step_logits = reader.tensor(gen_key(k, "logits")) if scored else torch.empty(0)
    for t in range(scored):
        full = torch.log_softmax(step_logits[t].to(torch.float64), dim=-1)
        ranks.append(int((full > full[srv[t]]).sum().item()) + 1)
        scores.in_topk.append(ranks[-1] <= top_k)
        top = top_ids(completion.top_logprobs[t]) if t < len(completion.top_logprobs) else None
        if top:
            scores.kls.append(topk_kl(top, full))
        lp = completion.token_logprobs[t] if t < len(completion.token_logprobs) else None
        if lp is not None and (first is None or t < first):
            scores.diffs.append(abs(float(lp) - float(full[srv[t]])))
    if first is not None and first < scored:
        top = top_ids(completion.top_logprobs[first]) or {}
        row.reference_token_in_server_topk = argmax[first] in top
        row.server_token_in_reference_topk = scores.in_topk[first]
    if completion.prompt_logprobs:
        logits = reader.tensor(prompt_key(k, "logits"))
        ids = rec.token_ids
        for t in range(1, min(len(ids), len(completion.prompt_logprobs))):
            entry = completion.prompt_logprobs[t]
            top = top_ids(entry) if entry else None
            if top and ids[t] in top:
                ref_lp = torch.log_softmax(logits[t - 1].to(torch.float64), dim=-1)[ids[t]]
                scores.prompt_diffs.append(abs(top[ids[t]] - float(ref_lp)))
    row.served_rank_max = max(ranks) if ranks else None
    row.logprob_abs_diff_mean = _mean(scores.diffs)
    row.logprob_abs_diff_max = max(scores.diffs) if scores.diffs else None
    row.topk_kl_mean = _mean(scores.kls)
    row.prompt_logprob_abs_diff_mean = _mean(scores.prompt_diffs)
    return row, scores


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compare_served(cfg: ServedConfig, reader: DumpReader, served: Served) -> ServedResult:
    """The served continuations (one per dump prompt, in order) against the dump's scores."""
    thresholds = load_thresholds(cfg.thresholds_file, cfg.profile)
    meta = reader.meta
    top_k = min(served.top_k, meta.top_k)
    rows: list[ServedPrompt] = []
    total = _Scores([], [], [], [])
    for k, completion in enumerate(served.completions):
        row, s = _compare_prompt(reader, k, completion, top_k)
        rows.append(row)
        total.diffs += s.diffs
        total.kls += s.kls
        total.prompt_diffs += s.prompt_diffs
        total.in_topk += s.in_topk
    tokens = sum(max(r.reference_tokens, r.server_tokens) for r in rows)
    matched = sum(r.matched_tokens for r in rows)
    diverging = [r for r in rows if r.first_mismatch is not None]
    judged = [r for r in diverging if r.reference_token_in_server_topk is not None]
    in_topk = [
        r for r in judged if r.reference_token_in_server_topk and r.server_token_in_reference_topk
    ]
    ranks = [r.served_rank_max for r in rows if r.served_rank_max is not None]
    metrics = ServedMetrics(
        prompts=len(rows),
        tokens=tokens,
        matched_tokens=matched,
        exact_match_rate=matched / tokens if tokens else 1.0,
        diverging_prompts=len(diverging),
        first_mismatch_in_topk=len(in_topk) / len(judged) if judged else 1.0,
        logprob_abs_diff_mean=_mean(total.diffs),
        logprob_abs_diff_max=max(total.diffs) if total.diffs else None,
        topk_kl_mean=_mean(total.kls),
        prompt_logprob_abs_diff_mean=_mean(total.prompt_diffs),
        prompt_logprobs_available=bool(total.prompt_diffs),
        teacher_forced=meta.continuation == "forced",
        scored_positions=len(total.in_topk),
        served_in_reference_topk=_mean([float(x) for x in total.in_topk]),
        served_rank_max=max(ranks) if ranks else None,
    )
    values = {k: v for k, v in metrics.model_dump().items() if isinstance(v, float | int)}
    values = {k: float(v) for k, v in values.items() if not isinstance(v, bool)}
    checks = evaluate("served", thresholds.limits.served, dict(values))
    failed = [c for c in checks if not c.passed]
    verdict: Literal["PASS", "FAIL"] = "FAIL" if failed else "PASS"
    reason = (
        failed_reason(failed)
        if failed
        else said(
            "precision.served_within",
            matched=matched,
            tokens=tokens,
            checks=len(checks),
            profile=thresholds.profile,
        )
    )
    return ServedResult(
        url=cfg.url,
        model=served.model,
        reference=DumpSummary.of(reader),
        top_k=top_k,
        thresholds=thresholds,
        metrics=metrics,
        prompts=rows,
        checks=checks,
        verdict=verdict,
        reason=reason,
    )


def check_served(cfg: ServedConfig) -> ServedResult:
    """The server against an existing dump: asked for as many tokens as the dump holds."""
    reader = open_dump(cfg.reference)
    meta = reader.meta
    served = ask_server(
        cfg.model_copy(update={"top_k": min(cfg.top_k or meta.top_k, meta.top_k)}),
        [p.token_ids for p in meta.prompts],
        [len(p.generated_ids) or meta.max_new_tokens for p in meta.prompts],
    )
    return compare_served(cfg, reader, served)


def check_served_forced(
    cfg: ServedConfig, ref: ReferenceConfig
) -> tuple[ServedResult, ReferenceDump]:
    """The server first, then the reference of ``ref.model`` scores each prompt plus the served
    continuation in one pass (its dump goes to ``ref.out``, which ``cfg.reference`` names)."""
    from adaptgate.reference.api import build_reference, encoded_prompts

    encoded = encoded_prompts(ref)
    served = ask_server(
        cfg.model_copy(update={"top_k": min(cfg.top_k or ref.top_k, ref.top_k)}),
        [e.token_ids for e in encoded],
        [ref.max_new_tokens] * len(encoded),
    )
    forced = [token_ids(c.tokens) or [] for c in served.completions]
    dump = build_reference(ref.model_copy(update={"continuations": forced}))
    return compare_served(cfg, open_dump(ref.out), served), dump
