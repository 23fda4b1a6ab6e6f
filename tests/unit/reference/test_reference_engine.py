"""The reference forward equals transformers' own forward; streamed equals full load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession

IDS = [[5, 17, 300, 42, 99, 1000, 7, 2500, 11], [9, 8, 7]]


def _encoded(ids: list[list[int]]) -> list[EncodedPrompt]:
    return [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=t)
        for i, t in enumerate(ids)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["qwen3", "qwen3_moe", "glm4_moe"])
def test_logits_hidden_and_greedy_equal_transformers(
    tiny_model: Callable[..., Path], arch: str
) -> None:
    from transformers import AutoModelForCausalLM

    path = tiny_model(arch=arch, format="bf16")
    session = ReferenceSession(str(path), stream=False)
    layers = session.lm.num_layers
    gens, _ = session.run(
        _encoded(IDS), max_new_tokens=4, capture=set(range(layers)), stop_at_eos=False
    )
    model = AutoModelForCausalLM.from_pretrained(  # MoE: the eager experts, the reference's
        path, dtype=torch.float32, experts_implementation="eager"
    ).eval()
    with torch.no_grad():
        for ids, gen in zip(IDS, gens, strict=True):
            inp = torch.tensor([ids])
            out = model(inp, output_hidden_states=True)
            assert torch.equal(out.logits[0], gen.prompt_logits)
            assert torch.equal(out.hidden_states[0][0], gen.hidden["embed"])
            # transformers' last hidden state is after the final norm; ours are layer outputs
            for i in range(layers - 1):
                assert torch.equal(out.hidden_states[i + 1][0], gen.hidden[str(i)]), i
            greedy = model.generate(
                inp,
                max_new_tokens=4,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                eos_token_id=None,
                pad_token_id=0,
            )
            assert greedy.sequences[0, len(ids) :].tolist() == gen.tokens
            # generate's first step runs the LM head on the last position only (logits_to_keep),
            # which rounds differently from the full forward; from then on they are identical
            assert torch.equal(out.logits[0, -1], gen.step_logits[0])
            for step, logits in enumerate(greedy.logits[1:], start=1):
                assert torch.equal(logits[0], gen.step_logits[step])
    if arch == "glm4_moe":  # the MTP layer is not part of transformers' model: ignored
        assert session.lm.ignored
        assert all(".layers.3." in n for n in session.lm.ignored)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "fmt"), [("qwen3", "fp8_block"), ("qwen3_moe", "fp8_block"), ("glm4_moe", "bf16")]
)
def test_streamed_equals_full_load(tiny_model: Callable[..., Path], arch: str, fmt: str) -> None:
    path = tiny_model(arch=arch, format=fmt)
    results = []
    for stream in (False, True):
        session = ReferenceSession(str(path), stream=stream, max_memory=0)  # no RAM cache
        gens, stats = session.run(
            _encoded(IDS), max_new_tokens=3, capture=set(range(session.lm.num_layers))
        )
        results.append(gens)
        if stream:
            assert not session.lm.loaded  # every unit was freed again
            assert stats.passes == 3
    full, streamed = results
    for a, b in zip(full, streamed, strict=True):
        assert torch.equal(a.prompt_logits, b.prompt_logits)
        assert a.hidden.keys() == b.hidden.keys()
        for key in a.hidden:
            assert torch.equal(a.hidden[key], b.hidden[key])
        assert a.tokens == b.tokens
        assert all(torch.equal(x, y) for x, y in zip(a.step_logits, b.step_logits, strict=True))


def test_streamed_mode_frees_parameters_between_layers(tiny_model: Callable[..., Path]) -> None:
    path = tiny_model(arch="qwen3", format="bf16")
    session = ReferenceSession(str(path), stream=True, max_memory=0)  # no RAM cache
    seen: list[tuple[str, int]] = []

    def on_unit(unit: str) -> None:
        real = sum(p.device.type != "meta" for p in session.lm.layers.parameters())
        seen.append((unit, real))

    session.run(_encoded(IDS[:1]), max_new_tokens=1, on_unit=on_unit)
    assert [u for u, _ in seen] == ["base", "layer.0", "layer.1"]
    assert all(real == 0 for _, real in seen)  # no layer parameter held after its unit
