"""The measurement computes what the plain algorithm computes (the one before the speed-up:
separate free-running and teacher-forced passes, transformers' DynamicCache and sdpa attention,
one LogitAccumulator call per step) -- every token, count and per-step metric, with float sums
equal up to the order in which the batches' sums are added -- and its faster parts are each
exact on their own."""

from __future__ import annotations

import copy
import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from kv_testlib import HEAD_DIM, KV_HEADS, LAYERS, arm, tiny_qwen2
from transformers.cache_utils import DynamicLayer

from adaptgate.kvcache.run import ModelShape, Simulation, buckets, simulate
from adaptgate.kvcache.scan import ScanAccumulator
from adaptgate.kvcache.sim import GQA_ATTENTION, Arm, gqa_attention, sim_cache
from adaptgate.metrics.logits import (
    LogitAccumulator,
    LogitMetrics,
    add_logits_per_position,
    merge_logits,
)
from adaptgate.reference.prompts import EncodedPrompt, Prompt

SHAPE = ModelShape(
    num_layers=LAYERS, kv_heads=KV_HEADS, head_dim=HEAD_DIM, hidden_size=64,
    attention_bias=True, qk_norm=False, architecture="Qwen2ForCausalLM", model_dtype="float32",
)  # fmt: skip
# two batches (the long prompt pads no one), one of a single prompt
LENGTHS = (3, 7, 11, 90)


def _prompts(seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 128, (n,), generator=g).tolist() for n in LENGTHS]


def _arms() -> list[Arm]:
    # scales that clip (FP8) and round coarsely (int8): the formats' logits and tokens move
    return [arm("fp8_e4m3", 0.01), arm("fp8_e5m2", 0.01), arm("int8_c8", 0.5)]


def _plain(model: Any, prompts: list[list[int]], arms: list[Arm], n: int, budget: int) -> Any:
    """The measurement as it was written before the speed-up (revision 3e8cdd5)."""
    runs = {
        a.name: SimpleNamespace(
            tokens=[[] for _ in prompts], logits=LogitAccumulator(),
            per_step=[LogitAccumulator() for _ in range(n)], nonfinite=0,
        )
        for a in arms
    }  # fmt: skip
    out = SimpleNamespace(baseline=[[] for _ in prompts], formats=runs,
                          scan=ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, arms))  # fmt: skip
    for group in buckets([len(p) for p in prompts]):
        _plain_group(model, [prompts[i] for i in group], group, arms, n, budget, out)
    return out


def _plain_group(model: Any, lists: list[list[int]], group: list[int], arms: list[Arm], n: int,
                 budget: int, out: Any) -> None:  # fmt: skip
    count, width, longest = len(lists), 1 + len(arms), max(len(p) for p in lists)
    rows = count * width

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        row_prompts = [p for p in lists for _ in range(width)]  # row = prompt * width + arm
        ids = [[0] * (longest - len(p)) + p for p in row_prompts]
        mask = [[0] * (longest - len(p)) + [1] * len(p) for p in row_prompts]
        return torch.tensor(ids), torch.tensor(mask)

    def cache(observer: Any = None) -> Any:
        c = sim_cache(model.config, [None, *arms] * count, observer)
        c.layers = [DynamicLayer() for _ in c.layers]  # transformers' own: cat per step
        return c

    def forward(ids: Any, c: Any, mask: Any, pos: Any, keep: int | None = None) -> Any:
        kw = {"logits_to_keep": keep} if keep else {}
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=c,
                       use_cache=True, **kw).logits  # fmt: skip
        return logits.float()

    def extend(mask: Any, tokens: int) -> Any:
        pos = mask.sum(1, keepdim=True) + torch.arange(tokens).unsqueeze(0)
        return torch.cat([mask, mask.new_ones(mask.shape[0], tokens)], 1), pos

    def accumulate(logits: Any, first: int) -> None:
        for p in range(count):
            base = logits[p * width]
            for j, a in enumerate(arms, start=1):
                run, test = out.formats[a.name], logits[p * width + j]
                finite = torch.isfinite(test).all(dim=-1)
                run.nonfinite += int((~finite).sum())
                test = torch.where(finite.unsqueeze(-1), test, torch.zeros_like(test))
                run.logits.add(base, test)
                for s in range(base.shape[0]):
                    run.per_step[first + s].add(base[s : s + 1], test[s : s + 1])

    # free-running
    ids, mask = batch()
    c = cache()
    logits = forward(ids, c, mask, (mask.cumsum(1) - 1).clamp_min(0), keep=1)[:, -1]
    for step in range(n):
        nxt = torch.argmax(logits, dim=-1).tolist()
        for p, i in enumerate(group):
            out.baseline[i].append(int(nxt[p * width]))
            for j, a in enumerate(arms, start=1):
                out.formats[a.name].tokens[i].append(int(nxt[p * width + j]))
        if step == n - 1:
            break
        mask, pos = extend(mask, 1)
        logits = forward(torch.tensor(nxt).view(-1, 1), c, mask, pos, keep=1)[:, -1]
    # teacher-forced
    ids, mask = batch()
    keep: list[Any] = [mask.bool()]

    def observe(layer: int, k: Any, v: Any, _prefill: bool) -> None:
        for p in range(count):
            r = p * width
            if keep[0] is None:
                out.scan.add(layer, k[r], v[r])
            else:
                out.scan.add(layer, k[r][:, keep[0][r]], v[r][:, keep[0][r]])

    c = cache(observe)
    first = forward(ids, c, mask, (mask.cumsum(1) - 1).clamp_min(0), keep=1)[:, -1:]
    keep[0] = None
    accumulate(first, 0)
    segment = max(1, min(n - 1, budget // (rows * first.shape[-1] * 4)))
    cont = torch.tensor([out.baseline[group[r // width]][:-1] for r in range(rows)])
    for start in range(0, n - 1, segment):
        chunk = cont[:, start : start + segment]
        mask, pos = extend(mask, chunk.shape[1])
        accumulate(forward(chunk, c, mask, pos), 1 + start)


def _simulate(model: Any, prompts: list[list[int]], arms: list[Arm], n: int, budget: int,
              workers: int) -> tuple[Simulation, list[int]]:  # fmt: skip
    session = SimpleNamespace(
        lm=SimpleNamespace(model=model), tokenizer=SimpleNamespace(pad_token_id=0, eos_token_id=0)
    )
    encoded = [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=ids)
        for i, ids in enumerate(prompts)
    ]
    ticks: list[int] = []
    sim = simulate(session, SHAPE, encoded, arms, n, ticks.append, workers=workers,  # type: ignore[arg-type]
                   logits_budget=budget)  # fmt: skip
    return sim, ticks


def _same_metrics(a: LogitMetrics, b: LogitMetrics) -> None:
    assert (a.positions, a.kl_max, a.top1_agreement) == (b.positions, b.kl_max, b.top1_agreement)
    assert a.kl_mean == pytest.approx(b.kl_mean, rel=1e-12, abs=1e-300)
    assert a.top5_overlap == pytest.approx(b.top5_overlap, rel=1e-12)


@pytest.mark.parametrize("workers", [1, 2])
def test_simulate_computes_what_the_plain_algorithm_computes(workers: int) -> None:
    model, prompts, arms, n = tiny_qwen2(seed=3, k_bias=2.0), _prompts(7), _arms(), 12
    budget = 3 * 128 * 4 * (1 + len(arms)) * 3  # 3 steps per chunk in the big batch: 4 chunks
    assert len(buckets(list(LENGTHS))) == 2
    with torch.inference_mode():
        plain = _plain(model, prompts, arms, n, budget)
    sim, ticks = _simulate(model, prompts, arms, n, budget, workers)
    assert sum(ticks) == n * len(prompts)
    assert model.config._attn_implementation == "sdpa"  # restored
    assert sim.baseline == plain.baseline
    moved, diverged = 0.0, 0
    for a in arms:
        got, want = sim.formats[a.name], plain.formats[a.name]
        assert got.tokens == want.tokens
        assert got.nonfinite == want.nonfinite
        _same_metrics(got.logits.result(), want.logits.result())
        for g, w in zip(got.per_step, want.per_step, strict=True):
            _same_metrics(g.result(), w.result())
        moved = max(moved, got.logits.result().kl_mean)
        diverged += sum(t != b for t, b in zip(got.tokens, sim.baseline, strict=True))
    assert moved > 1e-3 and diverged >= 2  # the formats change logits and generations
    names = [f"l{i}" for i in range(LAYERS)]
    for g_layer, w_layer in zip(sim.scan.result(names), plain.scan.result(names), strict=True):
        assert (g_layer.k_amax, g_layer.v_amax) == (w_layer.k_amax, w_layer.v_amax)
        for name, g_fmt in g_layer.formats.items():
            for g, w in ((g_fmt.k, w_layer.formats[name].k), (g_fmt.v, w_layer.formats[name].v)):
                assert g.model_dump(exclude={"rel_rms_error"}) == w.model_dump(
                    exclude={"rel_rms_error"}
                )
                assert g.rel_rms_error == pytest.approx(w.rel_rms_error, rel=1e-12)


def test_batches_in_parallel_give_exactly_the_sequential_results() -> None:
    model, prompts, arms = tiny_qwen2(seed=4), _prompts(8), _arms()[:2]
    one, _ = _simulate(model, prompts, arms, 6, 256 * 2**20, workers=1)
    two, _ = _simulate(model, prompts, arms, 6, 256 * 2**20, workers=2)
    assert one.baseline == two.baseline
    for a in arms:
        x, y = one.formats[a.name], two.formats[a.name]
        assert x.tokens == y.tokens
        assert x.logits == y.logits and x.per_step == y.per_step  # merged in batch order
    assert one.scan.acc == two.scan.acc


def test_a_failing_batch_stops_the_others() -> None:
    model, prompts = tiny_qwen2(seed=4), _prompts(8)
    session = SimpleNamespace(
        lm=SimpleNamespace(model=model), tokenizer=SimpleNamespace(pad_token_id=0, eos_token_id=0)
    )
    encoded = [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=ids)
        for i, ids in enumerate(prompts)
    ]
    big_batch_steps = []

    def tick(count: int) -> None:
        if count == 1:  # the one-prompt batch fails at its first step
            raise ValueError("boom")
        big_batch_steps.append(count)
        time.sleep(0.02)  # the other batch's steps take a while

    with pytest.raises(ValueError, match="boom"):
        simulate(session, SHAPE, encoded, _arms()[:1], 100, tick, workers=2)  # type: ignore[arg-type]
    assert len(big_batch_steps) < 50  # it stopped at a step soon after, not after its 100
    assert model.config._attn_implementation == "sdpa"


def test_gqa_attention_is_sdpa_bit_for_bit_and_is_restored() -> None:
    model = tiny_qwen2(seed=5)
    arms = [None, arm("fp8_e4m3", 0.01)]
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 128, (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :4] = 0  # a padded row: transformers repeats the KV heads (repeat_kv) under a mask

    def run() -> list[torch.Tensor]:
        cache, m, out = sim_cache(model.config, arms), mask, []
        pos = (m.cumsum(1) - 1).clamp_min(0)
        for step in range(4):
            step_ids = ids if step == 0 else ids[:, step : step + 1]
            kw = {"attention_mask": m, "position_ids": pos, "past_key_values": cache}
            out.append(model(input_ids=step_ids, **kw).logits)
            pos = m.sum(1, keepdim=True)
            m = torch.cat([m, torch.ones(2, 1, dtype=torch.long)], 1)
        return out

    with torch.inference_mode():
        want = run()
        with gqa_attention(model):
            assert model.config._attn_implementation == GQA_ATTENTION
            got = run()
    assert model.config._attn_implementation == "sdpa"
    assert model.model.layers[0].self_attn.num_key_value_groups == 2  # GQA: the path is taken
    for g_out, w_out in zip(got, want, strict=True):
        assert torch.equal(g_out, w_out)


def test_gqa_attention_leaves_other_implementations_alone() -> None:
    model = tiny_qwen2(seed=5)
    model.set_attn_implementation("eager")
    with gqa_attention(model):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "eager"


def test_the_growing_cache_returns_what_concatenation_returns() -> None:
    """Prefill, decode steps past the buffer's room, a copy taken midway (the teacher-forced
    pass's prompt cache) that must not see later writes, a row reorder, a reset."""
    model = tiny_qwen2()
    arms = [None, arm("fp8_e4m3", 0.01), arm("int8_c8", 0.02)]
    ours = sim_cache(model.config, arms)
    plain = sim_cache(model.config, arms)
    plain.layers = [DynamicLayer() for _ in plain.layers]
    g = torch.Generator().manual_seed(2)

    def kv(tokens: int, rows: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (rows, KV_HEADS, tokens, HEAD_DIM)
        return torch.randn(shape, generator=g), torch.randn(shape, generator=g)

    def same(k: torch.Tensor, v: torch.Tensor, rows: int = 3) -> None:
        for layer in range(LAYERS):
            got, want = ours.update(k, v, layer), plain.update(k, v, layer)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])

    same(*kv(5))
    snapshot, snapshot_plain = copy.deepcopy(ours), copy.deepcopy(plain)
    for _ in range(12):  # room doubles 5 -> 10 -> 20
        same(*kv(1))
    assert ours.get_seq_length(0) == 17
    k, v = kv(2)
    for layer in range(LAYERS):
        got, want = snapshot.update(k, v, layer), snapshot_plain.update(k, v, layer)
        assert got[0].shape[2] == 7 and torch.equal(got[0], want[0])
    for c in (ours, plain):
        c.batch_select_indices(torch.tensor([2, 0, 1]))
    rows_moved = sim_cache(model.config, [arms[i] for i in (2, 0, 1)])
    assert rows_moved.get_seq_length(0) == 0
    for layer in range(LAYERS):  # after the reorder, new tokens append after the kept ones
        k, v = kv(1)
        got = ours.layers[layer].update(k, v)
        want = plain.layers[layer].update(k, v)
        assert torch.equal(got[0], want[0]) and got[0].shape[2] == 18
    for c in (ours, plain):
        c.reset()
    same(*kv(3))
    assert ours.get_seq_length(0) == 3


def test_per_position_logits_are_the_accumulators_calls() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(7, 50, generator=g) * 3, torch.randn(7, 50, generator=g) * 3
    b[2] = a[2]  # one position with the same logits
    total, steps = LogitAccumulator(), [LogitAccumulator() for _ in range(7)]
    add_logits_per_position(total, steps, a, b)
    want_total, want_steps = LogitAccumulator(), [LogitAccumulator() for _ in range(7)]
    want_total.add(a, b)
    for s, acc in enumerate(want_steps):
        acc.add(a[s : s + 1], b[s : s + 1])
    assert total == want_total
    assert [x.result() for x in steps] == [x.result() for x in want_steps]
    assert steps[2].result().kl_mean == 0.0 and steps[0].result().kl_mean > 0
    shared = LogitAccumulator()  # positions of one step from several prompts: one accumulator
    add_logits_per_position(LogitAccumulator(), [shared] * 7, a, b)
    assert shared.positions == 7
    assert shared.kl_sum == pytest.approx(want_total.kl_sum, rel=1e-12)
    with pytest.raises(ValueError, match="accumulators"):
        add_logits_per_position(total, steps[:3], a, b)


def test_merging_accumulators_is_feeding_one() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(6, 40, generator=g), torch.randn(6, 40, generator=g)
    one, first, second = LogitAccumulator(), LogitAccumulator(), LogitAccumulator()
    one.add(a, b)
    first.add(a[:4], b[:4])
    second.add(a[4:], b[4:])
    merge_logits(first, second)
    assert (first.positions, first.top1, first.kl_max) == (one.positions, one.top1, one.kl_max)
    assert first.kl_sum == pytest.approx(one.kl_sum, rel=1e-12)
    assert first.top5 == pytest.approx(one.top5, rel=1e-12)

    arms = _arms()
    k = torch.randn(KV_HEADS, 30, HEAD_DIM, generator=g) * 5
    v = torch.randn(KV_HEADS, 30, HEAD_DIM, generator=g)
    whole = ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, arms)
    left = ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, arms)
    right = ScanAccumulator(LAYERS, KV_HEADS, HEAD_DIM, arms)
    for layer in range(LAYERS):
        whole.add(layer, k[:, :10], v[:, :10])
        whole.add(layer, k[:, 10:] * 20, v[:, 10:])
        left.add(layer, k[:, :10], v[:, :10])
        right.add(layer, k[:, 10:] * 20, v[:, 10:])
    left.merge(right)
    names = [f"l{i}" for i in range(LAYERS)]
    assert left.result(names) == whole.result(names)
    assert any(f.k.saturated_total for f in whole.result(names)[0].formats.values())
