"""The served check's top-k KL estimate against numpy, and its lower-bound property."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptgate.metrics.logits import topk_kl


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_kl_matches_numpy_and_bounds_the_true_kl(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocab, k = 200, 20
    ref_logits = rng.normal(0, 2, vocab)
    srv_logits = ref_logits + rng.normal(0, 0.3, vocab)
    lp = ref_logits - np.log(np.exp(ref_logits).sum())
    lq = srv_logits - np.log(np.exp(srv_logits).sum())
    top = np.argsort(-lq)[:k]
    q, p = np.exp(lq[top]), np.exp(lp[top])
    want = float(np.sum(q * (np.log(q) - np.log(p))))
    want += (1 - q.sum()) * (np.log(1 - q.sum()) - np.log(1 - p.sum()))
    got = topk_kl({int(i): float(lq[i]) for i in top}, torch.tensor(lp))
    assert got == pytest.approx(want, rel=1e-9)
    true_kl = float(np.sum(np.exp(lq) * (lq - lp)))
    assert 0 < got <= true_kl + 1e-12  # grouping the tail can only lower KL (log-sum inequality)


def test_same_distribution_has_zero_kl() -> None:
    lp = torch.log_softmax(torch.randn(50, dtype=torch.float64), dim=-1)
    top = {int(i): float(lp[i]) for i in torch.topk(lp, 5).indices}
    assert topk_kl(top, lp) == pytest.approx(0.0, abs=1e-12)
