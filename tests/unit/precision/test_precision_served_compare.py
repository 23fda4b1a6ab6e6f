"""The served comparison on fake data, against an independent numpy computation: KL, rank and
top-k membership at every position of a forced dump; only the same-context positions of a
greedy one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptgate.client import Completion
from adaptgate.precision.models import ServedConfig
from adaptgate.precision.served import Served, compare_served
from adaptgate.reference.dump import (
    ModelFacts,
    PromptRecord,
    ReferenceDump,
    gen_key,
    open_dump,
    prompt_key,
    write_dump,
)

VOCAB, STEPS, TOP_K = 40, 12, 5


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return (
        x
        - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - x.max(-1, keepdims=True)
    )


def _case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference logits and a server's (the reference plus noise), [STEPS, VOCAB] each."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 2, (STEPS, VOCAB))
    return ref, ref + rng.normal(0, 0.6, (STEPS, VOCAB))


def _dump(tmp: Path, ref: np.ndarray, tokens: list[int], continuation: str) -> Path:
    prompt = [1, 2, 3]
    meta = ReferenceDump(
        model=ModelFacts(
            path="m", architecture="A", model_type="t", num_layers=1, quantization="BF16",
            tokenizer_hash="h", vocab_size=VOCAB,
        ),
        device="cpu", dtype="float32", mode="full", layers=[], continuation=continuation,
        max_new_tokens=len(tokens), top_k=20, eos_token_ids=[],
        prompts=[
            PromptRecord(
                id="p", category="c", chat=False, text="t", rendered="t", token_ids=prompt,
                generated_ids=tokens,
            )
        ],
    )  # fmt: skip
    logits = torch.tensor(ref[: len(tokens)], dtype=torch.float32)
    tensors = {
        prompt_key(0, "logits"): torch.zeros(len(prompt), VOCAB),
        gen_key(0, "logits"): logits,
        gen_key(0, "argmax"): logits.argmax(-1),
    }
    write_dump(tmp, meta, tensors)
    return tmp


def _completion(srv: np.ndarray) -> Completion:
    """The server's greedy answer with top-k logprobs, as the client parses it."""
    lq = _log_softmax(srv)
    tokens = [int(t) for t in lq.argmax(-1)]
    top = [
        {f"token_id:{int(i)}": float(lq[t, i]) for i in np.argsort(-lq[t])[:TOP_K]}
        for t in range(len(tokens))
    ]
    return Completion(
        tokens=[f"token_id:{t}" for t in tokens],
        token_logprobs=[float(lq[t, tok]) for t, tok in enumerate(tokens)],
        top_logprobs=top,
    )


@dataclass
class _Expected:
    kls: list[float]
    ranks: list[int]
    first: int | None
    diffs: list[float]


def _expected(ref: np.ndarray, srv: np.ndarray, positions: int) -> _Expected:
    """float64 numpy: KL over the server's top-k plus a tail bucket, ranks, first divergence."""
    lp, lq = _log_softmax(ref), _log_softmax(srv)
    served = lq.argmax(-1)
    kls, ranks = [], []
    for t in range(positions):
        top = np.argsort(-lq[t])[:TOP_K]
        q, p = np.exp(lq[t, top]), np.exp(lp[t, top])
        kl = float(np.sum(q * (np.log(q) - np.log(p))))
        kls.append(kl + (1 - q.sum()) * (np.log(1 - q.sum()) - np.log(1 - p.sum())))
        ranks.append(int((lp[t] > lp[t, served[t]]).sum()) + 1)
    first = next((t for t in range(positions) if served[t] != lp[t].argmax()), None)
    diffs = [
        float(abs(lq[t, served[t]] - lp[t, served[t]]))
        for t in range(positions if first is None else first)
    ]
    return _Expected(kls, ranks, first, diffs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forced_dump_is_judged_at_every_position(tmp_path: Path, seed: int) -> None:
    ref, srv = _case(seed)
    completion = _completion(srv)
    served_tokens = [int(t.split(":")[1]) for t in completion.tokens]
    reader = open_dump(_dump(tmp_path, ref, served_tokens, "forced"))
    cfg = ServedConfig(url="http://fake", reference=tmp_path)
    result = compare_served(cfg, reader, Served("m", TOP_K, [completion]))
    want = _expected(ref, srv, STEPS)
    assert want.first is not None  # the noise makes them diverge somewhere
    m, row = result.metrics, result.prompts[0]
    assert m.teacher_forced and m.scored_positions == row.scored_positions == STEPS
    assert m.topk_kl_mean == pytest.approx(np.mean(want.kls), rel=1e-5)
    assert row.first_mismatch == want.first and m.matched_tokens == want.first
    assert m.served_rank_max == max(want.ranks)
    in_topk = np.mean([r <= TOP_K for r in want.ranks])
    assert m.served_in_reference_topk == pytest.approx(in_topk)
    if want.diffs:
        assert m.logprob_abs_diff_mean == pytest.approx(np.mean(want.diffs), rel=1e-5)
    else:  # diverged at the first position: no matched token
        assert m.logprob_abs_diff_mean is None
    first = want.first
    assert first is not None
    assert row.server_token_in_reference_topk == (want.ranks[first] <= TOP_K)
    ref_top = int(ref[first].argmax())
    assert row.reference_token_in_server_topk == (
        f"token_id:{ref_top}" in completion.top_logprobs[first]
    )


def test_greedy_dump_is_judged_only_where_the_context_is_shared(tmp_path: Path) -> None:
    ref, srv = _case(0)
    completion = _completion(srv)
    greedy = [int(t) for t in ref.argmax(-1)]  # the reference's own continuation
    reader = open_dump(_dump(tmp_path, ref, greedy, "greedy"))
    result = compare_served(
        ServedConfig(url="http://fake", reference=tmp_path),
        reader,
        Served("m", TOP_K, [completion]),
    )
    first = _expected(ref, srv, STEPS).first
    assert first is not None
    want = _expected(ref, srv, first + 1)  # up to and including the first difference
    m = result.metrics
    assert not m.teacher_forced and m.scored_positions == first + 1
    assert m.topk_kl_mean == pytest.approx(np.mean(want.kls), rel=1e-5)
    assert result.prompts[0].first_mismatch == first


def test_identical_numbers_pass(tmp_path: Path) -> None:
    ref, _ = _case(3)
    completion = _completion(ref)
    tokens = [int(t.split(":")[1]) for t in completion.tokens]
    reader = open_dump(_dump(tmp_path, ref, tokens, "forced"))
    result = compare_served(
        ServedConfig(url="http://fake", reference=tmp_path),
        reader,
        Served("m", TOP_K, [completion]),
    )
    assert result.verdict == "PASS", result.reason
    assert result.metrics.exact_match_rate == 1.0 and result.metrics.served_rank_max == 1
    assert result.metrics.topk_kl_mean == pytest.approx(0.0, abs=1e-6)
