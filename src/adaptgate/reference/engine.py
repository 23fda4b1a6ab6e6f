"""The forward pass in three phases, so one decoder layer at a time can serve every prompt.

For each sequence of the batch (prompts are not padded together; each runs alone):

A. **Inputs of every layer.** transformers' own ``model.forward`` runs with each decoder layer
   replaced by a recorder that keeps the exact ``(args, kwargs)`` the model passes it (hidden
   state, attention mask of that layer's type, rotary cos/sin, position ids, cache) and returns
   its input; the last one stops the forward. Only the input units (``base``, and the input
   embeddings when they are a unit of their own) are needed.
B. **The layers.** For each layer in order: load it, run every sequence through it with its
   recorded arguments, free it when streaming (into pages the next layer reuses:
   :func:`~adaptgate.reference.memory.reusing_heap`). A streamed MoE layer's routed experts are
   read by group for all sequences together (:mod:`adaptgate.reference.experts`).
C. **The tail.** ``model.forward`` runs again with every layer replaced by the recorded output
   of the last layer, so final norm, LM head and any logit post-processing are the model's own
   (:func:`tail_logits`; its inputs are zero embeddings, so the input embeddings are not held).

Full-load and layer-streamed runs execute the same calls in the same order on the same inputs;
only when weights are loaded differs, so their float32 outputs are identical. And because every
call is the one ``model.forward`` would make, logits equal transformers' own forward.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from adaptgate.reference.kvcache import CacheFactory, dynamic_cache
from adaptgate.reference.memory import reusing_heap
from adaptgate.reference.skeleton import BASE, LayeredModel, layer_unit

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.simulate import Simulation


class _Stop(Exception):
    """Raised by the last recorder: the rest of model.forward is not needed in phase A."""


@dataclass
class Sequence:
    """One prompt's running state: its cache lives across decode steps."""

    cache: Any  # transformers Cache


@dataclass
class _Calls:
    args: list[tuple[Any, ...]] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepOutput:
    logits: torch.Tensor  # [tokens, vocab] float32 on CPU
    hidden: dict[str, torch.Tensor] = field(default_factory=dict)  # "embed" / "<layer>" -> f32


def first_output(output: Any) -> torch.Tensor:
    """A decoder layer's hidden-state output (layers return a tensor or a tuple)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output[0]


def _host(t: torch.Tensor, *, copy: bool = True) -> torch.Tensor:
    """``t[0]`` as float32 on the CPU; ``copy`` False shares ``t``'s storage when it already is
    (a tensor nothing else writes, such as fresh logits)."""
    import torch

    out = t.detach()[0].to(device="cpu", dtype=torch.float32)
    return out.clone() if copy and out.data_ptr() == t.data_ptr() else out


class ReplacedLayers:
    """Temporarily replaces every layer's forward; restores on exit."""

    def __init__(self, lm: LayeredModel, make: Callable[[int], Callable[..., Any]]) -> None:
        self.lm, self.make = lm, make

    def __enter__(self) -> None:
        for i, layer in enumerate(self.lm.layers):
            layer.forward = self.make(i)

    def __exit__(self, *exc: object) -> None:
        for layer in self.lm.layers:
            if "forward" in layer.__dict__:
                del layer.forward


def tail_logits(lm: LayeredModel, final: Any) -> torch.Tensor:
    """The model's own forward after the last decoder layer -- final norm, LM head, any logit
    post-processing -- on ``final`` (the last layer's output, ``[rows, tokens, H]``): every
    layer returns it. The forward's inputs are zero embeddings of the same length, so only the
    output units (:attr:`LayeredModel.output_units`) need to be held."""
    import torch

    hidden = first_output(final)
    embeds = torch.zeros(1, hidden.shape[1], hidden.shape[-1], dtype=lm.dtype, device=lm.device)

    def constant(*_args: Any, **_kwargs: Any) -> Any:
        return final

    with ReplacedLayers(lm, lambda _i: constant):
        out = lm.model(inputs_embeds=embeds, use_cache=False)
    return out.logits


class Engine:
    """Runs passes over a set of sequences; ``stream`` frees each layer after use."""

    def __init__(
        self,
        lm: LayeredModel,
        *,
        stream: bool,
        cache_factory: CacheFactory | None = None,
        on_unit: Callable[[str], None] | None = None,
        simulation: Simulation | None = None,
    ) -> None:
        self.lm = lm
        self.stream = stream
        self.cache_factory = cache_factory or dynamic_cache
        self.on_unit = on_unit
        self.simulation = simulation

    def new_sequence(self) -> Sequence:
        return Sequence(cache=self.cache_factory(self.lm.model.config))

    def _record(self, seq: Sequence, ids: torch.Tensor) -> _Calls:
        calls = _Calls()
        last = self.lm.num_layers - 1

        def make(i: int) -> Callable[..., Any]:
            def recorder(*args: Any, **kwargs: Any) -> Any:
                if not args:  # hidden states passed by keyword
                    kwargs = dict(kwargs)
                    args = (kwargs.pop("hidden_states"),)
                calls.args.append(args)
                calls.kwargs.append(kwargs)
                if i == last:
                    raise _Stop
                return args[0]

            return recorder

        with ReplacedLayers(self.lm, make), suppress(_Stop):
            self.lm.model(input_ids=ids, past_key_values=seq.cache, use_cache=True)
        if len(calls.args) != self.lm.num_layers:
            raise RuntimeError(
                f"{type(self.lm.model).__name__}.forward called {len(calls.args)} of "
                f"{self.lm.num_layers} decoder layers"
            )
        return calls

    def _simulating(self) -> AbstractContextManager[Any]:
        return self.simulation.active() if self.simulation is not None else nullcontext()

    def _done(self, unit: str) -> None:
        if self.on_unit is not None:
            self.on_unit(unit)

    def _layer(
        self, i: int, layer: torch.nn.Module, hidden: list[torch.Tensor], calls: list[_Calls]
    ) -> list[Any]:
        """Layer ``i``'s output for every sequence (in one group pass over its routed experts
        when they are read by group)."""
        return self.lm.run_layer(
            i,
            [
                partial(layer, h, *c.args[i][1:], **c.kwargs[i])
                for h, c in zip(hidden, calls, strict=True)
            ],
        )

    def step(
        self,
        seqs: list[Sequence],
        ids: list[torch.Tensor],
        *,
        capture: set[int] | None = None,
        keep: bool = False,
    ) -> list[StepOutput]:
        """Feeds ``ids[k]`` (``[1, tokens]``) to ``seqs[k]``; returns logits (and the hidden
        states after the layers in ``capture``, plus the embeddings as ``"embed"``). ``keep``:
        another pass follows, so units the memory budget allows stay loaded (the RAM cache)."""
        import torch

        capture = capture or set()
        outputs = [StepOutput(logits=torch.empty(0)) for _ in seqs]
        with torch.inference_mode():
            dev_ids = [t.to(self.lm.device) for t in ids]
            with self.lm.holding_all(self.lm.input_units, release=self.stream, keep=keep):
                calls = [self._record(s, t) for s, t in zip(seqs, dev_ids, strict=True)]
            self._done(BASE)
            hidden = [c.args[0][0] for c in calls]
            if capture:
                for out, h in zip(outputs, hidden, strict=True):
                    out.hidden["embed"] = _host(h)
            raw: list[Any] = []
            with reusing_heap(self.stream):
                for i, layer in enumerate(self.lm.layers):
                    with (
                        self.lm.holding(layer_unit(i), release=self.stream, keep=keep),
                        self._simulating(),
                    ):
                        raw = self._layer(i, layer, hidden, calls)
                        for k in range(len(seqs)):
                            hidden[k] = first_output(raw[k])
                            if i in capture:
                                outputs[k].hidden[str(i)] = _host(hidden[k])
                    if self.stream and self.simulation is not None:
                        self.simulation.reset()  # freed storage addresses get reused
                    self._done(layer_unit(i))
            with self.lm.holding_all(self.lm.output_units, release=self.stream, keep=keep):
                for k, out in enumerate(outputs):
                    out.logits = _host(tail_logits(self.lm, raw[k]), copy=False)
                    raw[k] = None
        return outputs
