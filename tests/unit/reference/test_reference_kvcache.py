"""The K/V interception point: post-rotary keys reach the interceptor; prefill attends fresh."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adaptgate.reference.kvcache import intercepting_cache_factory
from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession

IDS = [5, 17, 300, 42, 99, 1000, 7]


def _prompt() -> list[EncodedPrompt]:
    return [EncodedPrompt(prompt=Prompt(id="a", text="x"), rendered="x", token_ids=IDS)]


@pytest.mark.slow
def test_interceptor_sees_every_write_and_prefill_attends_fresh(
    tiny_model: Callable[..., Path],
) -> None:
    session = ReferenceSession(str(tiny_model(arch="qwen3", format="bf16")), stream=False)
    base, _ = session.run(_prompt(), max_new_tokens=3, stop_at_eos=False)
    writes: list[tuple[int, tuple[int, ...], bool]] = []

    def record(layer: int, key: torch.Tensor, value: torch.Tensor, *, prefill: bool):  # type: ignore[no-untyped-def]
        writes.append((layer, tuple(key.shape), prefill))
        return key, value

    same, _ = session.run(
        _prompt(),
        max_new_tokens=3,
        stop_at_eos=False,
        cache_factory=intercepting_cache_factory(record),
    )
    assert torch.equal(same[0].prompt_logits, base[0].prompt_logits)
    assert same[0].tokens == base[0].tokens
    layers = session.lm.num_layers
    cfg = session.lm.model.config
    # prefill: one write per layer of all prompt tokens, then one token per decode step
    assert writes[:layers] == [
        (i, (1, cfg.num_key_value_heads, len(IDS), cfg.head_dim), True) for i in range(layers)
    ]
    assert len(writes) == 3 * layers and not any(p for _, _, p in writes[layers:])

    def crush(layer: int, key: torch.Tensor, value: torch.Tensor, *, prefill: bool):  # type: ignore[no-untyped-def]
        return key, torch.zeros_like(value)  # a cache that stores nothing useful

    crushed, _ = session.run(
        _prompt(),
        max_new_tokens=2,
        stop_at_eos=False,
        cache_factory=intercepting_cache_factory(crush),
    )
    # vLLM semantics: the prompt attends over fresh K/V, decode steps over the stored cache
    assert torch.equal(crushed[0].prompt_logits, base[0].prompt_logits)
    assert not torch.equal(crushed[0].step_logits[1], base[0].step_logits[1])
