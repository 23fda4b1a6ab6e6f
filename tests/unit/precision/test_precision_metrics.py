"""Every metric against an independent numpy computation on random tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adaptgate.metrics.logits import (
    EPS32,
    LogitAccumulator,
    TensorAccumulator,
    first_divergence,
    generation_metrics,
)


def _np_tensor_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    diff = np.abs(b - a)
    # msprobe: where the golden value is 0, add float32 eps to both before dividing
    a_adj, b_adj = a.copy(), b.copy()
    zero = a == 0
    a_adj[zero] += np.finfo(np.float32).eps
    b_adj[zero] += np.finfo(np.float32).eps
    rel = np.abs(b_adj - a_adj) / np.abs(a_adj)
    return {
        "max_abs_err": diff.max(),
        "mean_abs_err": diff.mean(),
        "max_rel_err": rel.max(),
        "mean_rel_err": rel.mean(),
        "rel_l1": diff.sum() / np.abs(a).sum(),
        "rel_l2": np.linalg.norm(b - a) / np.linalg.norm(a),
        "cosine": float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))),
        "within_1e3": float(np.mean(rel < 1e-3)),
        "within_5e3": float(np.mean(rel < 5e-3)),
    }


def _pairs(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for rows in (7, 13, 1):
        a = torch.randn(rows, 96, generator=gen)
        # errors of several magnitudes, so the 1/1000 and 5/1000 shares are not all 0 or 1
        scale = torch.tensor([1e-5, 1e-3, 3e-3, 3e-2])[
            torch.randint(0, 4, (rows, 96), generator=gen)
        ]
        b = a + a.abs() * scale * torch.randn(rows, 96, generator=gen)
        a[0, :5] = 0.0  # golden zeros: the eps convention
        b[0, :2] = 0.0
        out.append((a, b))
    return out


@pytest.mark.parametrize("chunk", [None, 7])  # 7: every tensor taken in many pieces
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tensor_metrics_match_numpy_over_accumulated_pairs(
    seed: int, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk is not None:
        monkeypatch.setattr("adaptgate.metrics.logits.CHUNK_ELEMENTS", chunk)
    pairs = _pairs(seed)
    acc = TensorAccumulator()
    for a, b in pairs:
        acc.add(a, b)
    got = acc.result()
    a_all = np.concatenate([a.numpy().ravel() for a, _ in pairs])
    b_all = np.concatenate([b.numpy().ravel() for _, b in pairs])
    want = _np_tensor_metrics(a_all, b_all)
    assert got.elements == a_all.size
    for name, value in want.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-15), name
    assert 0.0 < got.within_1e3 < got.within_5e3 < 1.0  # the test can tell the two apart


def test_relative_error_of_zero_golden_values() -> None:
    acc = TensorAccumulator()
    acc.add(torch.tensor([0.0, 0.0, 2.0]), torch.tensor([0.0, 1e-3, 2.0]))
    got = acc.result()
    assert got.max_rel_err == pytest.approx(1e-3 / EPS32, rel=1e-6)  # zero vs non-zero: huge
    assert got.within_1e3 == pytest.approx(2 / 3)  # two zeros agree exactly


def test_cosine_edge_cases_and_nonfinite() -> None:
    zeros = TensorAccumulator()
    zeros.add(torch.zeros(4), torch.zeros(4))
    assert zeros.result().cosine == 1.0
    one = TensorAccumulator()
    one.add(torch.zeros(4), torch.ones(4))
    assert one.result().cosine == 0.0
    assert one.result().rel_l2 == math.inf
    nan = TensorAccumulator()
    nan.add(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, 2.0, float("inf")]))
    assert nan.result().nonfinite == 2
    assert nan.result().elements == 1


def test_cosine_is_computed_in_float64() -> None:
    a = torch.full((100_000,), 1.0, dtype=torch.float32)
    b = a.clone()
    b[::2] += 1e-4
    acc = TensorAccumulator()
    acc.add(a, b)
    a64, b64 = a.double().numpy(), b.double().numpy()
    want = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    a32, b32 = a.numpy(), b.numpy()
    in_float32 = float(np.dot(a32, b32) / (np.linalg.norm(a32) * np.linalg.norm(b32)))
    assert abs(acc.result().cosine - want) < 1e-13
    assert abs(in_float32 - want) > 1e-9  # float32 could not resolve this difference


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("chunk", [None, 120])  # 120: two positions of 50 logits at a time
@pytest.mark.parametrize("seed", [0, 1])
def test_logit_metrics_match_numpy(
    seed: int, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunk is not None:
        monkeypatch.setattr("adaptgate.metrics.logits.CHUNK_ELEMENTS", chunk)
    gen = torch.Generator().manual_seed(seed)
    chunks = []
    acc = LogitAccumulator()
    for rows in (5, 9):
        a = 3 * torch.randn(rows, 50, generator=gen)
        b = a + 0.4 * torch.randn(rows, 50, generator=gen)
        acc.add(a, b)
        chunks.append((a.numpy(), b.numpy()))
    a = np.concatenate([c[0] for c in chunks])
    b = np.concatenate([c[1] for c in chunks])
    la, lb = _np_log_softmax(a), _np_log_softmax(b)
    kl = (np.exp(la) * (la - lb)).sum(axis=-1)
    top1 = np.mean(a.argmax(-1) == b.argmax(-1))
    top5 = np.mean(
        [
            len(set(np.argsort(-x)[:5]) & set(np.argsort(-y)[:5])) / 5
            for x, y in zip(a, b, strict=True)
        ]
    )
    got = acc.result()
    assert got.positions == a.shape[0]
    assert got.kl_mean == pytest.approx(kl.mean(), rel=1e-9)
    assert got.kl_max == pytest.approx(kl.max(), rel=1e-9)
    assert got.top1_agreement == pytest.approx(top1)
    assert got.top5_overlap == pytest.approx(top5)
    assert 0 < got.top1_agreement < 1  # the perturbation is big enough to flip some argmaxes


def test_generation_metrics() -> None:
    pairs = [
        ([1, 2, 3, 4], [1, 2, 3, 4]),  # identical
        ([1, 2, 3, 4], [1, 2, 9, 4]),  # diverges at 2
        ([5, 6], [5, 6, 7]),  # one side longer: diverges where the shorter ends
        ([8, 9, 10], [0, 9, 10]),  # diverges at 0; later agreement does not count
    ]
    got = generation_metrics(pairs)
    assert got.first_divergence == [None, 2, 2, 0]
    assert got.earliest_divergence == 0
    assert got.tokens == 4 + 4 + 3 + 3
    assert got.matched_tokens == 4 + 2 + 2 + 0
    assert got.exact_match_rate == pytest.approx(8 / 14)
    assert got.sequence_match_rate == pytest.approx(1 / 4)
    assert first_divergence([], []) is None
