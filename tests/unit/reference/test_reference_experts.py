"""Streamed MoE layers read only the routed experts, a group at a time, and compute exactly what
the full load computes (transformers' eager experts)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from adaptgate.reference.prompts import EncodedPrompt, Prompt
from adaptgate.reference.session import ReferenceSession

IDS = [[5, 17, 300, 42, 99, 1000, 7, 2500, 11, 64, 1200], [9, 8, 7], [2000, 3, 150, 77]]


def _encoded() -> list[EncodedPrompt]:
    return [
        EncodedPrompt(prompt=Prompt(id=f"p{i}", text="x"), rendered="x", token_ids=t)
        for i, t in enumerate(IDS)
    ]


def _top_k(src: Path, dst: Path, k: int) -> Path:
    """A copy of ``src`` routing each token to ``k`` experts: the experts' outputs of a token are
    then summed over k terms, where grouping could change the order of the additions."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["num_experts_per_tok"] = k
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _session(path: Path, stream: bool, group_experts: int | None = None) -> ReferenceSession:
    """``group_experts``: the experts a group holds at most (None: the default budget)."""
    session = ReferenceSession(str(path), stream=stream, max_memory=0)
    if group_experts is not None:
        for experts in session.lm.experts.values():
            experts.group_bytes = group_experts * experts.expert_bytes(0)
    return session


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "fmt"), [("qwen3_moe", "fp8_block"), ("glm4_moe", "bf16")])
def test_grouped_experts_equal_the_full_load(
    tiny_model: Callable[..., Path], tmp_path: Path, arch: str, fmt: str
) -> None:
    path = _top_k(tiny_model(arch=arch, format=fmt), tmp_path / "m", 5)
    full = _session(path, stream=False)
    assert not full.lm.experts  # a full load holds every expert
    want, _ = full.run(_encoded(), max_new_tokens=3, capture=set(range(full.lm.num_layers)))
    for group in (1, 3):
        session = _session(path, stream=True, group_experts=group)
        assert session.lm.experts  # every MoE layer reads its experts by group
        got, _ = session.run(_encoded(), max_new_tokens=3, capture=set(range(full.lm.num_layers)))
        for a, b in zip(want, got, strict=True):
            assert torch.equal(a.prompt_logits, b.prompt_logits)
            assert all(torch.equal(a.hidden[k], b.hidden[k]) for k in a.hidden)
            assert a.tokens == b.tokens
            assert all(torch.equal(x, y) for x, y in zip(a.step_logits, b.step_logits, strict=True))
        assert not session.lm.loaded


def _routed(session: ReferenceSession) -> dict[int, list[set[int]]]:
    """Per MoE layer, the expert ids each call of its experts module is routed to, recorded
    from the module's inputs in a full-load run."""
    seen: dict[int, list[set[int]]] = {}
    for i, layer in enumerate(session.lm.layers):
        for module in layer.modules():
            if isinstance(getattr(module, "num_experts", None), int) and hasattr(
                module, "has_gate"
            ):

                def hook(_m: Any, args: tuple[Any, ...], i: int = i) -> None:
                    seen.setdefault(i, []).append(set(args[1].reshape(-1).tolist()))

                module.register_forward_pre_hook(hook)
    return seen


def _raw_bytes(session: ReferenceSession, names: list[str]) -> int:
    """Checkpoint bytes reading ``names`` takes: each tensor and an FP8 weight's scale."""
    tensors, fp8 = session.ckpt.tensors, session.weights.fp8
    return sum(tensors[n].nbytes + (tensors[fp8[n].scale].nbytes if n in fp8 else 0) for n in names)


@pytest.mark.slow
def test_a_pass_reads_only_the_routed_experts(tiny_model: Callable[..., Path]) -> None:
    path = tiny_model(arch="qwen3_moe", format="fp8_block")
    full = _session(path, stream=False)
    routed = _routed(full)
    full.run(_encoded(), max_new_tokens=3, stop_at_eos=False)
    session = _session(path, stream=True, group_experts=2)
    lm = session.lm
    held: list[int] = []
    convert = lm.convert_state

    def counting(state: dict[str, torch.Tensor]) -> Any:
        held.append(len({n.split(".experts.")[1].split(".")[0] for n in state if ".experts." in n}))
        return convert(state)

    lm.convert_state = counting  # type: ignore[method-assign]
    _, stats = session.run(_encoded(), max_new_tokens=3, stop_at_eos=False)
    assert max(held) == 2  # a group holds at most 2 experts
    held_units = [*lm.input_units, *(f"layer.{i}" for i in range(lm.num_layers)), *lm.output_units]
    others = _raw_bytes(session, [n for u in held_units for n in lm.unit_names(u)])
    n = len(IDS)  # every pass calls each MoE layer once per sequence
    expected = []
    for p in range(stats.passes):
        hits = {i: set().union(*routed[i][p * n : p * n + n]) for i in lm.experts}
        names = [t for i, hit in hits.items() for e in hit for t in lm.experts[i].names[e]]
        expected.append(others + _raw_bytes(session, names))
    assert stats.bytes_read == expected
    assert stats.bytes_read[1] < stats.bytes_read[0]  # a decode step routes to fewer experts
    decode_hits = [len(set().union(*routed[i][n : 2 * n])) for i in lm.experts]
    assert min(decode_hits) < 8  # ... so some experts were never read in that pass


def test_dense_models_have_no_grouped_experts(tiny_model: Callable[..., Path]) -> None:
    session = _session(tiny_model(arch="qwen3", format="bf16"), stream=True)
    assert session.lm.experts == {}


@pytest.mark.slow
def test_the_dump_reports_the_experts_each_pass_read(
    tiny_model: Callable[..., Path], tmp_path: Path
) -> None:
    from rich.console import Console

    from adaptgate.reference.api import ReferenceConfig, build_reference
    from adaptgate.reference.render import render

    path = tiny_model(arch="qwen3_moe", format="fp8_block")
    cfg = ReferenceConfig(model=str(path), out=tmp_path / "d", stream=True, max_memory=0,
                          max_new_tokens=3)  # fmt: skip
    dump = build_reference(cfg)
    t = dump.timings
    assert t is not None and t.routed_experts == 2 * 8  # 2 layers of 8 experts
    assert len(t.experts_read_per_pass) == t.passes == 3
    assert all(0 < n <= 16 for n in t.experts_read_per_pass)
    assert t.experts_read_per_pass[1] <= t.experts_read_per_pass[0]  # one token per prompt
    console = Console(record=True, width=200)
    render(dump, console, str(tmp_path / "d"))
    per = ", ".join(map(str, t.experts_read_per_pass))
    assert f"routed experts read per pass (of 16, by group): {per}" in console.export_text()
    full = build_reference(cfg.model_copy(update={"out": tmp_path / "f", "stream": False}))
    assert full.timings is not None and full.timings.routed_experts is None
    assert full.timings.experts_read_per_pass == []
