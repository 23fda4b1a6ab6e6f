"""Tensor, logit and generation metrics, accumulated over prompts, computed in float64.

Conventions (``shared/docs/formats.md`` section 7; msprobe's compare algorithms):

- ``a`` is the golden (reference) tensor, ``b`` the one under test.
- relative error ``|b - a| / |a|`` elementwise; where ``a == 0`` both values get float32 eps
  added first (msprobe), so two zeros agree and a zero against non-zero counts as a large error.
- ``within_1e3`` / ``within_5e3``: share of elements whose relative error is *below* 1/1000 and
  5/1000 (msprobe's thousandth / five-thousandths ratios).
- ``rel_l2 = ||b - a||_2 / ||a||_2`` (msit's relative Euclidean distance),
  ``rel_l1 = sum|b - a| / sum|a|``; both ``inf`` when ``a`` is all zeros and ``b`` is not.
- ``cosine`` in float64; 1.0 when both tensors are all zeros, 0.0 when only one is.
- logits: ``KL(softmax(a) || softmax(b))`` per position (mean and max), top-1 agreement (share of
  positions with the same argmax), top-5 overlap (mean of |top5(a) & top5(b)| / 5).
- generations: per sequence the first position where the greedy tokens differ (None if they
  never do within the shorter one and lengths agree); ``exact_match_rate`` = tokens before the
  first divergence / tokens generated (the longer of the two per sequence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import torch

EPS32 = 1.1920928955078125e-07  # np.finfo(np.float32).eps
TOP_N = 5
# elements per float64 temporary: ``add`` works through larger tensors in pieces, so a prompt's
# logits ([730, 151936] are 111 M elements) cost ~128 MB per temporary, not ~0.9 GB
CHUNK_ELEMENTS = 1 << 24


class TensorMetrics(BaseModel):
    elements: int
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float
    mean_rel_err: float
    rel_l1: float
    rel_l2: float
    cosine: float
    within_1e3: float = Field(description="share of elements with relative error < 0.001")
    within_5e3: float = Field(description="share of elements with relative error < 0.005")
    nonfinite: int = Field(default=0, description="elements that are NaN/inf in either tensor")


class LogitMetrics(BaseModel):
    positions: int
    kl_mean: float
    kl_max: float
    top1_agreement: float
    top5_overlap: float


class GenerationMetrics(BaseModel):
    sequences: int
    tokens: int
    matched_tokens: int
    exact_match_rate: float
    sequence_match_rate: float
    first_divergence: list[int | None]
    earliest_divergence: int | None


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 0.0 if num == 0 else math.inf


@dataclass
class TensorAccumulator:
    """Sums and extremes over any number of (golden, test) pairs of equal shape."""

    n: int = 0
    nonfinite: int = 0
    max_abs: float = 0.0
    sum_abs: float = 0.0
    max_rel: float = 0.0
    sum_rel: float = 0.0
    sum_abs_ref: float = 0.0
    sum_sq_diff: float = 0.0
    sum_sq_a: float = 0.0
    sum_sq_b: float = 0.0
    dot: float = 0.0
    within_1e3: int = 0
    within_5e3: int = 0

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        flat_a, flat_b = a.detach().reshape(-1), b.detach().reshape(-1)
        for start in range(0, max(1, flat_a.numel()), CHUNK_ELEMENTS):
            end = start + CHUNK_ELEMENTS
            self._add(flat_a[start:end], flat_b[start:end])

    def _add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        import torch

        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        finite = torch.isfinite(a64) & torch.isfinite(b64)
        self.nonfinite += int((~finite).sum())
        if not bool(finite.all()):
            a64, b64 = a64[finite], b64[finite]
        self.n += int(a64.numel())
        if a64.numel() == 0:
            return
        diff = (b64 - a64).abs()
        zero = a64 == 0
        denom = torch.where(zero, torch.full_like(a64, EPS32), a64.abs())
        num = torch.where(zero, (b64 + EPS32 - EPS32).abs(), diff)
        rel = num / denom
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.sum_abs += float(diff.sum())
        self.max_rel = max(self.max_rel, float(rel.max()))
        self.sum_rel += float(rel.sum())
        self.sum_abs_ref += float(a64.abs().sum())
        self.sum_sq_diff += float((diff * diff).sum())
        self.sum_sq_a += float((a64 * a64).sum())
        self.sum_sq_b += float((b64 * b64).sum())
        self.dot += float((a64 * b64).sum())
        self.within_1e3 += int((rel < 1e-3).sum())
        self.within_5e3 += int((rel < 5e-3).sum())

    def result(self) -> TensorMetrics:
        n = max(self.n, 1)
        norm_a, norm_b = math.sqrt(self.sum_sq_a), math.sqrt(self.sum_sq_b)
        if norm_a == 0 and norm_b == 0:
            cosine = 1.0
        elif norm_a == 0 or norm_b == 0:
            cosine = 0.0
        else:
            cosine = self.dot / (norm_a * norm_b)
        return TensorMetrics(
            elements=self.n,
            max_abs_err=self.max_abs,
            mean_abs_err=self.sum_abs / n,
            max_rel_err=self.max_rel,
            mean_rel_err=self.sum_rel / n,
            rel_l1=_ratio(self.sum_abs, self.sum_abs_ref),
            rel_l2=_ratio(math.sqrt(self.sum_sq_diff), norm_a),
            cosine=cosine,
            within_1e3=self.within_1e3 / n,
            within_5e3=self.within_5e3 / n,
            nonfinite=self.nonfinite,
        )


@dataclass
class LogitAccumulator:
    positions: int = 0
    kl_sum: float = 0.0
    kl_max: float = 0.0
    top1: int = 0
    top5: float = 0.0

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """``a``, ``b``: ``[positions, vocab]`` logits (taken a few positions at a time)."""
        if a.shape != b.shape or a.dim() != 2:
            raise ValueError(f"logits must be equal 2-D shapes: {tuple(a.shape)} vs {b.shape}")
        rows = max(1, CHUNK_ELEMENTS // max(1, a.shape[1]))
        for start in range(0, a.shape[0], rows):
            terms = _position_terms(a[start : start + rows], b[start : start + rows])
            assert terms is not None
            self._take(*terms)

    def _take(self, kl: torch.Tensor, top1: torch.Tensor, overlap: torch.Tensor, n: int) -> None:
        """Adds the per-position terms of :func:`_position_terms`."""
        self.positions += int(kl.shape[0])
        self.kl_sum += float(kl.sum())
        self.kl_max = max(self.kl_max, float(kl.max()))
        self.top1 += int(top1.sum())
        self.top5 += float(overlap.sum()) / n

    def result(self) -> LogitMetrics:
        p = max(self.positions, 1)
        return LogitMetrics(
            positions=self.positions,
            kl_mean=self.kl_sum / p,
            kl_max=self.kl_max,
            top1_agreement=self.top1 / p,
            top5_overlap=self.top5 / p,
        )


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def generation_metrics(pairs: list[tuple[list[int], list[int]]]) -> GenerationMetrics:
    firsts = [first_divergence(a, b) for a, b in pairs]
    tokens = sum(max(len(a), len(b)) for a, b in pairs)
    matched = sum((len(a) if f is None else f) for (a, _), f in zip(pairs, firsts, strict=True))
    seen = [f for f in firsts if f is not None]
    return GenerationMetrics(
        sequences=len(pairs),
        tokens=tokens,
        matched_tokens=matched,
        exact_match_rate=matched / tokens if tokens else 1.0,
        sequence_match_rate=(sum(f is None for f in firsts) / len(pairs) if pairs else 1.0),
        first_divergence=firsts,
        earliest_divergence=min(seen) if seen else None,
    )


def add_logits_per_position(
    total: LogitAccumulator, per_position: list[LogitAccumulator], a: torch.Tensor, b: torch.Tensor
) -> None:
    """``total.add(a, b)`` and ``per_position[i].add(a[i:i+1], b[i:i+1])`` for every position
    ``i`` of the ``[positions, vocab]`` logits, from one log-softmax and top-k pass over them
    (the same terms and sums as those calls, float rounding aside)."""
    if len(per_position) != a.shape[0]:
        raise ValueError(f"{len(per_position)} accumulators for {a.shape[0]} positions")
    terms = _position_terms(a, b)
    if terms is None:
        return
    total._take(*terms)
    kl, top1, overlap, n = terms
    for acc, k, same, shared in zip(
        per_position, kl.tolist(), top1.tolist(), overlap.tolist(), strict=True
    ):
        acc.positions += 1
        acc.kl_sum += k
        acc.kl_max = max(acc.kl_max, k)
        acc.top1 += int(same)
        acc.top5 += float(shared) / n


def merge_logits(total: LogitAccumulator, part: LogitAccumulator) -> None:
    """Adds ``part``'s positions to ``total``, as if ``total`` had been fed them (float sums
    aside: the parts' sums are added, not their terms)."""
    total.positions += part.positions
    total.kl_sum += part.kl_sum
    total.kl_max = max(total.kl_max, part.kl_max)
    total.top1 += part.top1
    total.top5 += part.top5


def _position_terms(
    a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int] | None:
    """Per position of ``[positions, vocab]`` logits: KL(a || b) in float64, argmax agreement,
    top-N overlap count; and N. None for no positions."""
    import torch

    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"logits must be equal 2-D shapes: {tuple(a.shape)} vs {b.shape}")
    if a.shape[0] == 0:
        return None
    la = torch.log_softmax(a.to(torch.float64), dim=-1)
    lb = torch.log_softmax(b.to(torch.float64), dim=-1)
    kl = (la.exp() * (la - lb)).sum(dim=-1).clamp_min(0.0)
    top1 = a.argmax(dim=-1) == b.argmax(dim=-1)
    n = min(TOP_N, a.shape[1])
    ta, tb = a.topk(n, dim=-1).indices, b.topk(n, dim=-1).indices
    overlap = (ta.unsqueeze(-1) == tb.unsqueeze(-2)).any(dim=-1).sum(dim=-1)
    return kl, top1, overlap, n


def topk_kl(server_top: dict[int, float], ref_logprobs: torch.Tensor) -> float:
    """KL(server || reference) over the server's top-k plus a tail bucket (a lower bound)."""
    ids = list(server_top)
    q = [math.exp(server_top[i]) for i in ids]
    p = [math.exp(float(ref_logprobs[i])) for i in ids]
    kl = sum(qi * (math.log(qi) - math.log(max(pi, 1e-300))) for qi, pi in zip(q, p, strict=True))
    q_tail, p_tail = max(0.0, 1.0 - sum(q)), max(1e-300, 1.0 - sum(p))
    if q_tail > 0:
        kl += q_tail * (math.log(q_tail) - math.log(p_tail))
    return max(0.0, kl)
