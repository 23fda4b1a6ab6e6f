"""The simulated cache stores each row through its arm and attends where the engines do."""

from __future__ import annotations

import pytest
import torch
from kv_testlib import HEAD_DIM, KV_HEADS, arm, tiny_qwen2

from adaptgate.kvcache.sim import sim_cache


def _kv(rows: int, tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (rows, KV_HEADS, tokens, HEAD_DIM)
    return torch.randn(shape, generator=g) * 300, torch.randn(shape, generator=g)


def test_rows_are_stored_through_their_arm_and_prefill_modes_differ() -> None:
    model = tiny_qwen2()
    e4m3_cache, e4m3_fresh = arm("fp8_e4m3"), arm("fp8_e4m3", prefill="fresh")
    cache = sim_cache(model.config, [None, e4m3_cache, e4m3_fresh])
    k, v = _kv(3, 5, 0)
    keys, values = cache.update(k, v, 0)
    want_k, want_v = e4m3_cache.roundtrip(0, k[1], v[1])
    assert torch.equal(keys[0], k[0]) and torch.equal(values[0], v[0])  # baseline: exact
    assert torch.equal(keys[1], want_k) and torch.equal(values[1], want_v)  # cache mode
    assert torch.equal(keys[2], k[2]) and torch.equal(values[2], v[2])  # fresh in prefill
    assert keys[1].abs().max() <= 448  # saturated
    # decode: every row reads the stored cache, fresh-mode rows included
    k2, v2 = _kv(3, 1, 1)
    keys, _ = cache.update(k2, v2, 0)
    assert keys.shape[2] == 6
    stored_fresh = e4m3_fresh.roundtrip(0, k[2], v[2])[0]
    assert torch.equal(keys[2, :, :5], stored_fresh)
    assert torch.equal(keys[2, :, 5:], e4m3_fresh.roundtrip(0, k2[2], v2[2])[0])
    assert torch.equal(keys[0], torch.cat([k[0], k2[0]], dim=1))


def test_observer_sees_raw_values_and_batch_must_match_arms() -> None:
    model = tiny_qwen2()
    seen: list[tuple[int, bool]] = []
    cache = sim_cache(
        model.config, [None, arm("int8_c8", 0.05)], lambda i, k, v, p: seen.append((i, p))
    )
    k, v = _kv(2, 3, 2)
    cache.update(k, v, 0)
    cache.update(k[:, :, :1], v[:, :, :1], 0)
    assert seen == [(0, True), (0, False)]
    with pytest.raises(RuntimeError, match="rows"):
        cache.update(k[:1], v[:1], 1)


@pytest.mark.parametrize("names", [("fp8_e4m3", "fp8_e5m2"), ("int8_c8",)])
def test_teacher_forced_chunk_equals_decode_steps(names: tuple[str, ...]) -> None:
    """The premise of the teacher-forced pass: feeding a continuation as one chunk over the
    quantized cache gives the decode steps' logits (static scales, token-wise quantization)."""
    model = tiny_qwen2(seed=3, k_bias=2.0)
    scale = 0.02 if names == ("int8_c8",) else 0.01  # small scales: saturation and coarse codes
    arms = [None, *(arm(n, scale) for n in names)]
    rows = len(arms)
    g = torch.Generator().manual_seed(5)
    prompt = torch.randint(0, 128, (1, 9), generator=g).expand(rows, -1)
    cont = torch.randint(0, 128, (1, 12), generator=g).expand(rows, -1)
    with torch.inference_mode():
        cache = sim_cache(model.config, arms)
        model(input_ids=prompt, past_key_values=cache, use_cache=True)
        steps = [
            model(input_ids=cont[:, i : i + 1], past_key_values=cache, use_cache=True).logits
            for i in range(cont.shape[1])
        ]
        stepwise = torch.cat(steps, dim=1)
        cache = sim_cache(model.config, arms)
        model(input_ids=prompt, past_key_values=cache, use_cache=True)
        chunk = model(input_ids=cont, past_key_values=cache, use_cache=True).logits
    # float rounding of the chunked matmuls can move a value across an FP8/int8 rounding
    # boundary (one code step): a few 1e-4 differences, far below the quantization's effect
    torch.testing.assert_close(chunk, stepwise, rtol=0, atol=1e-3)
    assert (chunk - stepwise).abs().mean() < 1e-5
    assert (chunk[1] - chunk[0]).abs().max() > 1e-2  # the quantization does matter


def test_prefill_over_the_cache_changes_prompt_logits_fresh_does_not() -> None:
    model = tiny_qwen2(seed=1)
    arms = [None, arm("fp8_e4m3", 0.02, prefill="cache"), arm("fp8_e4m3", 0.02, prefill="fresh")]
    ids = torch.randint(0, 128, (1, 7), generator=torch.Generator().manual_seed(0)).expand(3, -1)
    with torch.inference_mode():
        logits = model(input_ids=ids, past_key_values=sim_cache(model.config, arms)).logits
    torch.testing.assert_close(logits[2], logits[0], rtol=0, atol=1e-6)
    assert not torch.allclose(logits[1], logits[0], atol=1e-4)
