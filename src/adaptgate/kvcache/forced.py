"""The teacher-forced measurement in one pass over the weights, for models that do not fit.

Each text is a prompt and a forced continuation. Every text runs as one batch of rows: the
unquantized baseline, then one row per format, with the simulated cache of
:mod:`adaptgate.kvcache.sim`. The pass goes layer by layer: a decoder layer is loaded once, every
text's rows run through it -- the prompt first (prefill, each row per its arm's prefill mode),
then the continuation in one chunk over the quantized cache, which is exactly the decode steps'
attention (K/V quantized token by token with static scales, float rounding aside) -- and it is
freed when streaming. Every text's prompt runs before any continuation, so a streamed MoE
layer serves each round's experts together, reading only the routed ones
(:mod:`adaptgate.reference.experts`); full load runs the calls in the same order. A layer's
cache is needed only while that layer runs, so it is dropped after it: memory holds one layer's
K/V, not the model's.

The layers' arguments (masks, rotary cos/sin, positions) are recorded from transformers' own
``model.forward`` with recorders in place of the layers, as the reference's
:class:`~adaptgate.reference.engine.Engine` does; the continuation's are recorded against a
probe cache that only says how long the prompt is (the engine runs one chunk per sequence per
pass, this pass two). The tail (final norm, LM head) runs the model's own forward with the
layers replaced by the recorded outputs.

With ``--scales calibrated`` a layer's scales are computed when it is loaded, from the
baseline's prompt K/V at that layer (what a calibration prefill sees), before any format runs
through it: calibration costs no pass of its own.

Metrics are the free-running measurement's teacher-forced ones (per-step KL and top-1
agreement against the baseline, the outlier scan over the baseline's K/V), and per text the
argmax along the forced text of the baseline and of each format, whose first divergence is the
greedy one's when the forced text is the baseline's own greedy continuation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from adaptgate.kvcache.run import (
    FormatRun,
    ModelShape,
    Progress,
    Simulation,
    accumulate_rows,
    new_runs,
)
from adaptgate.kvcache.scales import Calibration, calibrated_scales
from adaptgate.kvcache.scan import CalibrationAccumulator, ScanAccumulator
from adaptgate.kvcache.sim import Arm, gqa_attention, sim_cache
from adaptgate.reference.engine import ReplacedLayers, first_output, tail_logits
from adaptgate.reference.memory import reusing_heap

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.session import ReferenceSession
    from adaptgate.reference.skeleton import LayeredModel


@dataclass
class ForcedText:
    """A prompt and its forced continuation (token ids); the continuation's tokens are scored:
    the logits after ``prompt + continuation[:t]`` against ``continuation[t]``'s position."""

    prompt: list[int]
    continuation: list[int]


@dataclass
class WeightReads:
    """What the measurement read of the checkpoint: passes over the decoder layers and bytes of
    weight tensors (scale tensors aside), ``base`` (embeddings, LM head) included."""

    passes: float = 0.0
    bytes_read: int = 0
    layer_loads: int = 0


@dataclass
class Calibrating:
    """``--scales calibrated`` in the pass: ``acc`` is fed every text's prompt K/V of the
    baseline at a layer, then ``rescale(layer)`` sets the formats' scales of that layer."""

    acc: CalibrationAccumulator
    rescale: Callable[[int], None]

    @classmethod
    def of(cls, arms: list[Arm], num_layers: int) -> Calibrating:
        """Each layer's scales of every arm calibrated from that layer's maxima, as
        :func:`calibrated_scales` computes them for the whole model."""
        acc = CalibrationAccumulator(num_layers)

        def rescale(layer: int) -> None:
            k, v = acc.k[layer], acc.v[layer]
            assert k is not None and v is not None
            for a in arms:
                one = calibrated_scales(a.scales.format, Calibration([k], [v], acc.tokens))
                a.scales.layers[layer] = one.layers[0]

        return cls(acc, rescale)


def full_load_reads(lm: LayeredModel) -> WeightReads:
    """A model loaded in full: every unit read once."""
    return WeightReads(1.0, sum(unit_bytes(lm, u) for u in lm.units), lm.num_layers)


@dataclass
class _Text:
    rows: int
    calls: list[_Calls]  # per chunk: the prompt, then the continuation (when longer than 1)
    hidden: list[torch.Tensor] = field(default_factory=list)  # per chunk [rows, tokens, H]


@dataclass
class _Calls:
    embed: torch.Tensor  # [1, tokens, H]
    args: list[tuple[Any, ...]] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)


class _Stop(Exception):
    """Raised by the last recorder: the rest of model.forward is not needed."""


def unit_bytes(lm: LayeredModel, unit: str) -> int:
    """Checkpoint bytes loading ``unit`` reads (scales aside; routed experts read by group are
    counted by :meth:`LayeredModel.experts_weight_bytes`)."""
    tensors = lm.weights.ckpt.tensors
    return sum(tensors[n].nbytes for n in lm.unit_names(unit))


class _Reader:
    """Holds units on ``lm`` (freeing them after when ``stream``) and counts what is read."""

    def __init__(self, lm: LayeredModel, stream: bool) -> None:
        """What is loaded already was read for this run too (by the session)."""
        self.lm, self.stream = lm, stream
        self.experts0 = lm.experts_weight_bytes()  # routed experts read by group: counted after
        layers = sum(u.startswith("layer.") for u in lm.loaded)
        self.reads = WeightReads(0.0, sum(unit_bytes(lm, u) for u in lm.loaded), layers)

    def hold(self, *units: str) -> Any:
        for unit in units:
            if unit not in self.lm.loaded:
                self.reads.bytes_read += unit_bytes(self.lm, unit)
                self.reads.layer_loads += unit.startswith("layer.")
        return self.lm.holding_all(units, release=self.stream)


def _call(
    layer: torch.nn.Module, i: int, text: _Text, chunk: int, cache: Any, *, baseline: bool = False
) -> Callable[[], Any]:
    """Layer ``i`` on ``text``'s chunk over ``cache`` (``baseline``: its first row only)."""
    c = text.calls[chunk]
    hidden = text.hidden[chunk][:1] if baseline else text.hidden[chunk]
    return partial(layer, hidden, *c.args[i], **{**c.kwargs[i], "past_key_values": cache})


def _record(lm: LayeredModel, ids: torch.Tensor, past: int) -> _Calls:
    """The arguments ``model.forward`` gives each layer for ``ids`` (``[1, tokens]``) after
    ``past`` tokens; its cache is a probe of that length (the real one is passed per call)."""
    import torch
    from transformers import DynamicCache

    probe = DynamicCache(config=lm.model.config)
    if past:
        z = torch.zeros(1, 1, past, 1, dtype=lm.dtype, device=lm.device)
        for i in range(lm.num_layers):
            probe.update(z, z, i)
    calls = _Calls(embed=torch.empty(0))
    last = lm.num_layers - 1

    def make(i: int) -> Callable[..., Any]:
        def recorder(*args: Any, **kwargs: Any) -> Any:
            if not args:  # hidden states passed by keyword
                kwargs = dict(kwargs)
                args = (kwargs.pop("hidden_states"),)
            if "past_key_values" not in kwargs:
                raise RuntimeError(f"{type(lm.model).__name__} passes its layers no cache")
            if i == 0:
                calls.embed = args[0]
            calls.args.append(args[1:])
            calls.kwargs.append(kwargs)
            if i == last:
                raise _Stop
            return args[0]

        return recorder

    positions = torch.arange(past, past + ids.shape[1], device=lm.device).unsqueeze(0)
    with ReplacedLayers(lm, make), suppress(_Stop):
        lm.model(input_ids=ids, position_ids=positions, past_key_values=probe, use_cache=True)
    if len(calls.args) != lm.num_layers:
        raise RuntimeError(
            f"{type(lm.model).__name__}.forward called {len(calls.args)} of "
            f"{lm.num_layers} decoder layers"
        )
    return calls


def forced_simulation(
    session: ReferenceSession,
    shape: ModelShape,
    texts: list[ForcedText],
    arms: list[Arm],
    *,
    calibration: Calibrating | None = None,
    tick: Progress | None = None,
    logits_budget: int = 256 * 2**20,
) -> tuple[Simulation, WeightReads]:
    """The pass of the module doc; ``tick(1)`` after each unit (base, layers, base)."""
    import torch

    t0 = time.perf_counter()
    lm, reader = session.lm, _Reader(session.lm, session.stream)
    width = 1 + len(arms)
    row_arms: list[Arm | None] = [None, *arms]
    steps = max(len(t.continuation) for t in texts)
    runs = new_runs(arms, len(texts), steps)
    scan = ScanAccumulator(shape.num_layers, shape.kv_heads, shape.head_dim, arms)
    baseline: list[list[int]] = [[] for _ in texts]
    done = tick or (lambda _n: None)

    def scanning(layer: int, k: torch.Tensor, v: torch.Tensor, _prefill: bool) -> None:
        scan.add(layer, k[0], v[0])

    def calibrating(layer: int, k: torch.Tensor, v: torch.Tensor, _prefill: bool) -> None:
        assert calibration is not None
        calibration.acc.add(layer, k[0], v[0])

    config = lm.model.config
    with torch.inference_mode(), gqa_attention(lm.model):
        with reader.hold(*lm.input_units):
            state = []
            for t in texts:
                chunks = [(t.prompt, 0), (t.continuation[:-1], len(t.prompt))]
                calls = [
                    _record(lm, torch.tensor([ids], dtype=torch.long, device=lm.device), past)
                    for ids, past in chunks
                    if ids
                ]
                state.append(_Text(width, calls, [c.embed.expand(width, -1, -1) for c in calls]))
        done(1)
        with reusing_heap(reader.stream):
            for i, layer in enumerate(lm.layers):
                with reader.hold(f"layer.{i}"):
                    if calibration is not None:  # the baseline's prompt, as a calibration prefill
                        fresh = [sim_cache(config, [None], calibrating) for _ in state]
                        pairs = zip(state, fresh, strict=True)
                        lm.run_layer(i, [_call(layer, i, s, 0, c, baseline=True) for s, c in pairs])
                        calibration.rescale(i)
                    caches = [sim_cache(config, row_arms, scanning) for _ in state]
                    for j in range(max(len(s.calls) for s in state)):  # prompts, then continuations
                        todo = [k for k, s in enumerate(state) if j < len(s.calls)]
                        outs = lm.run_layer(
                            i, [_call(layer, i, state[k], j, caches[k]) for k in todo]
                        )
                        for k, out in zip(todo, outs, strict=True):
                            state[k].hidden[j] = first_output(out)
                    del caches  # this layer's K/V: no later layer reads them
                done(1)
        with reader.hold(*lm.output_units):
            for k, s in enumerate(state):
                final = torch.cat([h[:, -1:] if j == 0 else h for j, h in enumerate(s.hidden)],
                                  dim=1)  # fmt: skip
                s.hidden = []
                _score(lm, final, runs, arms, baseline, k, width, logits_budget)
        done(1)
    reads = reader.reads
    reads.bytes_read += lm.experts_weight_bytes() - reader.experts0
    reads.passes = reads.layer_loads / lm.num_layers
    sim = Simulation(baseline, runs, scan, time.perf_counter() - t0)
    return sim, reads


def _score(
    lm: LayeredModel,
    final: torch.Tensor,
    runs: dict[str, FormatRun],
    arms: list[Arm],
    baseline: list[list[int]],
    k: int,
    width: int,
    logits_budget: int,
) -> None:
    """Text ``k``'s logits at every scored position, in segments of at most ``logits_budget``
    bytes: the metrics against the baseline row and each row's argmax."""
    vocab = int(lm.model.get_output_embeddings().weight.shape[0])
    segment = max(1, logits_budget // max(1, width * vocab * 4))
    for start in range(0, final.shape[1], segment):
        logits = tail_logits(lm, final[:, start : start + segment]).float()
        top = logits.argmax(dim=-1).tolist()  # first index on ties, as the greedy path
        baseline[k] += top[0]
        for j, a in enumerate(arms, start=1):
            runs[a.name].tokens[k] += top[j]
        accumulate_rows(runs, arms, logits, width, start)
