"""Teacher-forced scoring: the greedy path's scores in one pass; the RAM cache under its budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adaptgate.errors import DumpError
from adaptgate.reference.api import ReferenceConfig, build_reference
from adaptgate.reference.dump import gen_key, open_dump
from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession
from adaptgate.reference.skeleton import BASE, EMBED, HEAD

IDS = [[5, 17, 300, 42, 99, 1000, 7, 2500, 11], [9, 8, 7]]
TOKENS = 8
# float32 rounding: the forced pass multiplies [T+N, H] matrices where greedy multiplies [1, H]
# rows, so sums are blocked differently and logits differ in the last bits (measured: ~3e-6 on
# logits of magnitude ~3.4, about 8 float32 ulps). Both paths must stay within this many ulps
# (of the largest logit) of a float64 forward, and so within twice that of each other.
ULPS = 64


def _encoded(ids: list[list[int]]) -> list[EncodedPrompt]:
    return [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=t)
        for i, t in enumerate(ids)
    ]


def _float64_logits(path: Path, ids: list[int]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
def test_forced_scores_equal_the_greedy_path_in_one_pass(
    tiny_model: Callable[..., Path], stream: bool
) -> None:
    path = tiny_model(arch="qwen3", format="bf16")
    session = ReferenceSession(str(path), stream=stream, max_memory=0)
    greedy, greedy_stats = session.run(_encoded(IDS), max_new_tokens=TOKENS, stop_at_eos=False)
    forced, stats = session.score(_encoded(IDS), [g.tokens for g in greedy])
    assert greedy_stats.passes == TOKENS and stats.passes == 1
    for ids, g, f in zip(IDS, greedy, forced, strict=True):
        assert f.tokens == g.tokens == f.argmax == g.argmax
        assert f.ranks == g.ranks == [1] * TOKENS
        want = _float64_logits(path, ids + g.tokens)
        tol = ULPS * torch.finfo(torch.float32).eps * float(want.abs().max())
        n = len(ids)
        for got in (g, f):
            assert float((got.prompt_logits.double() - want[:n]).abs().max()) <= tol
            steps = torch.stack(got.step_logits).double()
            assert float((steps - want[n - 1 : n - 1 + TOKENS]).abs().max()) <= tol
            lp = torch.log_softmax(want[n - 1 : n - 1 + TOKENS], dim=-1)
            expect = [float(lp[t, tok]) for t, tok in enumerate(g.tokens)]
            assert got.logprobs == pytest.approx(expect, abs=2 * tol)
        diff = torch.stack(f.step_logits) - torch.stack(g.step_logits)
        assert float(diff.abs().max()) <= 2 * tol


@pytest.mark.slow
def test_forced_moe_streamed_equals_full_load(tiny_model: Callable[..., Path]) -> None:
    path = tiny_model(arch="qwen3_moe", format="fp8_block")
    forced = [[3, 4, 5, 6], [100, 200]]
    runs = []
    for stream in (False, True):
        session = ReferenceSession(str(path), stream=stream, max_memory=0)
        gens, stats = session.score(_encoded(IDS), forced, capture={0})
        assert stats.passes == 1
        runs.append(gens)
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a.prompt_logits, b.prompt_logits)
        assert torch.equal(a.hidden["0"], b.hidden["0"])
        assert all(torch.equal(x, y) for x, y in zip(a.step_logits, b.step_logits, strict=True))
        assert a.ranks == b.ranks and a.logprobs == b.logprobs


def _raw_bytes(path: Path, names: list[str] | None = None) -> int:
    from adaptgate.checkpoint import open_checkpoint

    tensors = open_checkpoint(str(path)).tensors
    return sum(tensors[n].nbytes for n in (names if names is not None else tensors))


def test_one_pass_reads_the_checkpoint_once_for_any_number_of_tokens(
    tiny_model: Callable[..., Path],
) -> None:
    path = tiny_model(arch="qwen3", format="bf16")
    session = ReferenceSession(str(path), stream=True, max_memory=0)
    base = _raw_bytes(path, session.lm.units[BASE])
    once = _raw_bytes(path) + base  # base serves the embeddings and the tail: held twice
    for count in (1, 24):
        _, stats = session.score(_encoded(IDS), [list(range(10, 10 + count))] * 2)
        assert stats.bytes_read == [once]
    _, greedy = session.run(_encoded(IDS), max_new_tokens=6, stop_at_eos=False)
    assert greedy.bytes_read == [once] * 6  # one re-read per token: what scoring avoids


def test_memory_budget_bounds_the_ram_cache(tiny_model: Callable[..., Path]) -> None:
    path = tiny_model(arch="qwen3", format="bf16")
    forced = [[1, 2, 3], [4]]
    tiny = ReferenceSession(str(path), stream=True, max_memory=0)
    first, second = (tiny.score(_encoded(IDS), forced, keep=True)[1] for _ in range(2))
    assert first.bytes_read == second.bytes_read and first.bytes_read[0] > 0
    assert second.cache_hits == 0 and not tiny.lm.loaded and tiny.lm.kept_bytes == 0

    large = ReferenceSession(str(path), stream=True, max_memory=10**12)
    alone = large.score(_encoded(IDS), forced)[1]  # a single pass fills no cache
    assert not large.lm.kept and not large.lm.loaded and alone.bytes_read[0] > 0
    first, second = (large.score(_encoded(IDS), forced, keep=True)[1] for _ in range(2))
    assert first.bytes_read[0] > 0 and second.bytes_read == [0]
    assert first.cache_hits == 1  # base, held again for the tail
    assert second.cache_hits == len(large.lm.units) + 1  # every unit, base twice

    # room for one unit being streamed plus base: base is cached, the layers are re-read
    lm = large.lm
    base_only = ReferenceSession(
        str(path), stream=True, max_memory=lm.largest_unit_bytes() + lm.unit_bytes(BASE)
    )
    first, second = (base_only.score(_encoded(IDS), forced, keep=True)[1] for _ in range(2))
    assert base_only.lm.kept == {BASE}
    assert base_only.lm.kept_bytes <= base_only.lm.cache_budget
    base_raw = _raw_bytes(path, base_only.lm.units[BASE])
    assert second.bytes_read == [first.bytes_read[0] - base_raw]
    # same numbers whatever the cache holds
    gens = [s.score(_encoded(IDS), forced)[0] for s in (tiny, large, base_only)]
    for a in gens[1:]:
        for x, y in zip(gens[0], a, strict=True):
            assert all(torch.equal(p, q) for p, q in zip(x.step_logits, y.step_logits, strict=True))


@pytest.mark.slow
def test_dump_scores_another_dumps_continuations(
    tiny_model: Callable[..., Path], tmp_path: Path
) -> None:
    path = tiny_model(arch="qwen3", format="bf16")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "text": "The future of AI is"}) + "\n", "utf-8")
    greedy = build_reference(
        ReferenceConfig(model=str(path), out=tmp_path / "g", prompts_file=prompts, max_new_tokens=6)
    )
    forced = build_reference(
        ReferenceConfig(
            model=str(path),
            out=tmp_path / "f",
            prompts_file=prompts,
            continuations_from=tmp_path / "g",
            max_memory=0,
            stream=True,
        )
    )
    assert greedy.continuation == "greedy" and forced.continuation == "forced"
    assert forced.prompts[0].generated_ids == greedy.prompts[0].generated_ids
    assert forced.timings is not None and greedy.timings is not None
    assert forced.timings.passes == 1 and greedy.timings.passes == 6
    assert len(forced.timings.bytes_read_per_pass) == 1 and forced.timings.cache_hits == 0
    assert forced.timings.peak_rss_bytes and forced.timings.memory_budget_bytes == 0
    reader = open_dump(tmp_path / "f")
    assert reader.argmax(0) == greedy.prompts[0].generated_ids
    assert reader.tensor(gen_key(0, "ranks")).tolist() == [1] * 6

    other = tmp_path / "o.jsonl"
    other.write_text(json.dumps({"id": "a", "text": "Something else"}) + "\n", "utf-8")
    with pytest.raises(DumpError, match="has no prompt 'a'"):
        build_reference(
            ReferenceConfig(
                model=str(path),
                out=tmp_path / "x",
                prompts_file=other,
                continuations_from=tmp_path / "g",
            )
        )


@pytest.mark.parametrize("tied", [False, True])
def test_untied_embeddings_and_lm_head_are_never_held_together(
    tiny_model: Callable[..., Path], tied: bool
) -> None:
    """Streamed, the input embeddings are held before the layers and the LM head after them;
    tied, they are one matrix in ``base``. The logits are the full load's either way."""
    path = tiny_model(arch="qwen3", format="bf16", tie_embeddings=tied)
    session = ReferenceSession(str(path), stream=True, max_memory=0)
    lm = session.lm
    assert (EMBED in lm.units and HEAD in lm.units) is not tied
    if not tied:
        assert lm.units[EMBED] == ["model.embed_tokens.weight"]
        assert lm.units[HEAD] == ["lm_head.weight"]
        assert lm.units[BASE] == ["model.norm.weight"]
    seen: list[set[str]] = []
    load = lm.load

    def spying(unit: str) -> None:
        load(unit)
        seen.append(set(lm.loaded))

    lm.load = spying  # type: ignore[method-assign]
    streamed, stats = session.score(_encoded(IDS), [[3, 4], [5]])
    assert seen and not any({EMBED, HEAD} <= held for held in seen)
    assert stats.bytes_read == [_raw_bytes(path) + _raw_bytes(path, lm.units[BASE])]
    full, _ = ReferenceSession(str(path), stream=False).score(_encoded(IDS), [[3, 4], [5]])
    for a, b in zip(streamed, full, strict=True):
        assert torch.equal(a.prompt_logits, b.prompt_logits)
        assert all(torch.equal(x, y) for x, y in zip(a.step_logits, b.step_logits, strict=True))
