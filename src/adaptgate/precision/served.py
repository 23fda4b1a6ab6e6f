"""The served-model check: a server's greedy generations and log-probabilities against a
reference dump, token by token.

Per prompt: the server generates as many tokens as the reference did (greedy, top-k logprobs,
the reference's token ids as the prompt). Compared:

- exact-match rate: tokens before the first mismatch / tokens generated (the longer side);
- at the first mismatch, whether the server's token is in the reference's top-k and the
  reference's token is in the server's top-k (vLLM's own ``check_logprobs_close`` criterion);
  ``first_mismatch_in_topk`` is the share of diverging prompts that satisfy it (1.0 if none);
- |logprob difference| of the matched tokens (mean, max);
- a KL estimate at every step with the same context (up to and including the first mismatch):
  ``KL(server || reference)`` over the server's top-k tokens plus one bucket for the rest of the
  vocabulary, with the reference's full distribution (a lower bound of the true KL);
- prompt log-probabilities, when the server returns them (vLLM's ``prompt_logprobs``).
"""

from __future__ import annotations

from typing import Literal

from adaptgate.client import Client, Completion, token_ids, top_ids
from adaptgate.errors import UsageError
from adaptgate.metrics.limits import evaluate
from adaptgate.metrics.logits import topk_kl
from adaptgate.precision.models import (
    DumpSummary,
    ServedConfig,
    ServedMetrics,
    ServedPrompt,
    ServedResult,
)
from adaptgate.precision.thresholds import load_thresholds
from adaptgate.reference.dump import DumpReader, gen_key, open_dump, prompt_key


def _compare_prompt(
    reader: DumpReader, k: int, completion: Completion, top_k: int
) -> tuple[ServedPrompt, list[float], list[float], list[float]]:
    import torch

    rec = reader.meta.prompts[k]
    ref = rec.generated_ids
    srv = token_ids(completion.tokens)
    if srv is None:
        raise UsageError(
            "the server did not return token ids (`return_tokens_as_token_ids`)",
            fix="use vLLM (or a server that returns tokens as token_id:N) for this check",
        )
    first = next((i for i, (x, y) in enumerate(zip(ref, srv, strict=False)) if x != y), None)
    if first is None and len(ref) != len(srv):
        first = min(len(ref), len(srv))
    matched = len(ref) if first is None else first
    row = ServedPrompt(
        id=rec.id,
        reference_tokens=len(ref),
        server_tokens=len(srv),
        matched_tokens=matched,
        first_mismatch=first,
        server_text=completion.text,
    )
    diffs: list[float] = []
    kls: list[float] = []
    prompt_diffs: list[float] = []
    if ref:
        ref_logprobs = reader.tensor(gen_key(k, "logprobs"))
        ref_topk = reader.tensor(gen_key(k, "topk_ids"))[:, :top_k]
        step_logits = reader.tensor(gen_key(k, "logits"))
        for t in range(matched):
            lp = completion.token_logprobs[t] if t < len(completion.token_logprobs) else None
            if lp is not None:
                diffs.append(abs(float(lp) - float(ref_logprobs[t])))
        same_context = min(len(ref), len(srv), matched + 1)
        for t in range(same_context):
            top = top_ids(completion.top_logprobs[t]) if t < len(completion.top_logprobs) else None
            if top:
                full = torch.log_softmax(step_logits[t].to(torch.float64), dim=-1)
                kls.append(topk_kl(top, full))
        if first is not None and first < min(len(ref), len(srv)):
            top = top_ids(completion.top_logprobs[first]) or {}
            row.reference_token_in_server_topk = ref[first] in top
            row.server_token_in_reference_topk = srv[first] in ref_topk[first].tolist()
    if completion.prompt_logprobs:
        logits = reader.tensor(prompt_key(k, "logits"))
        ids = rec.token_ids
        for t in range(1, min(len(ids), len(completion.prompt_logprobs))):
            entry = completion.prompt_logprobs[t]
            top = top_ids(entry) if entry else None
            if top and ids[t] in top:
                ref_lp = torch.log_softmax(logits[t - 1].to(torch.float64), dim=-1)[ids[t]]
                prompt_diffs.append(abs(top[ids[t]] - float(ref_lp)))
    row.logprob_abs_diff_mean = sum(diffs) / len(diffs) if diffs else None
    row.logprob_abs_diff_max = max(diffs) if diffs else None
    row.topk_kl_mean = sum(kls) / len(kls) if kls else None
    row.prompt_logprob_abs_diff_mean = (
        sum(prompt_diffs) / len(prompt_diffs) if prompt_diffs else None
    )
    return row, diffs, kls, prompt_diffs


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def check_served(cfg: ServedConfig) -> ServedResult:
    thresholds = load_thresholds(cfg.thresholds_file, cfg.profile)
    reader = open_dump(cfg.reference)
    meta = reader.meta
    top_k = min(cfg.top_k or meta.top_k, meta.top_k, 20)
    client = Client(cfg.url, timeout_s=cfg.timeout)
    model = cfg.model
    if model is None:
        served = client.model_ids()
        if not served:
            raise UsageError(f"{cfg.url} serves no model", fix="pass --model NAME")
        model = served[0]
    rows: list[ServedPrompt] = []
    diffs: list[float] = []
    kls: list[float] = []
    prompt_diffs: list[float] = []
    for k, rec in enumerate(meta.prompts):
        max_tokens = max(1, len(rec.generated_ids) or meta.max_new_tokens)
        completion = client.complete(model, rec.token_ids, max_tokens, top_k)
        row, d, kl, pd = _compare_prompt(reader, k, completion, top_k)
        rows.append(row)
        diffs += d
        kls += kl
        prompt_diffs += pd
    tokens = sum(max(r.reference_tokens, r.server_tokens) for r in rows)
    matched = sum(r.matched_tokens for r in rows)
    diverging = [r for r in rows if r.first_mismatch is not None]
    judged = [r for r in diverging if r.reference_token_in_server_topk is not None]
    in_topk = [
        r for r in judged if r.reference_token_in_server_topk and r.server_token_in_reference_topk
    ]
    metrics = ServedMetrics(
        prompts=len(rows),
        tokens=tokens,
        matched_tokens=matched,
        exact_match_rate=matched / tokens if tokens else 1.0,
        diverging_prompts=len(diverging),
        first_mismatch_in_topk=len(in_topk) / len(judged) if judged else 1.0,
        logprob_abs_diff_mean=_mean(diffs),
        logprob_abs_diff_max=max(diffs) if diffs else None,
        topk_kl_mean=_mean(kls),
        prompt_logprob_abs_diff_mean=_mean(prompt_diffs),
        prompt_logprobs_available=bool(prompt_diffs),
    )
    values = {k: v for k, v in metrics.model_dump().items() if isinstance(v, float | int)}
    values = {k: float(v) for k, v in values.items() if not isinstance(v, bool)}
    checks = evaluate("served", thresholds.limits.served, dict(values))
    failed = [c for c in checks if not c.passed]
    verdict: Literal["PASS", "FAIL"] = "FAIL" if failed else "PASS"
    reason = (
        "; ".join(c.describe() for c in failed[:2])
        if failed
        else f"{matched}/{tokens} tokens match; all {len(checks)} checks within "
        f"{thresholds.profile} thresholds"
    )
    return ServedResult(
        url=cfg.url,
        model=model,
        reference=DumpSummary.of(reader),
        top_k=top_k,
        thresholds=thresholds,
        metrics=metrics,
        prompts=rows,
        checks=checks,
        verdict=verdict,
        reason=reason,
    )
