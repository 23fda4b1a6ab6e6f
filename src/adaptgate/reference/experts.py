"""Streamed MoE layers read only the routed experts the tokens go to, a group at a time.

A MoE layer's routed experts are most of its weights: one layer of Qwen3-235B (128 experts of
3 x 4096 x 1536) is 9.7 GB in float32, one of GLM-4.7 (160 of 3 x 5120 x 1536) 15.1 GB. In
streamed mode such a layer's unit is loaded without them, and its experts module hands its
inputs to :class:`RoutedExperts`:

1. **Together.** Every sequence's call of the layer runs in a greenlet of its own until it calls
   the experts module, where it hands over its request (hidden states, routed expert ids, routing
   weights) and waits (:meth:`RoutedExperts.run`). Greenlets switch only there, on one thread, in
   a fixed order: the layer's other computations are the same calls as without them.
2. **By group.** The experts that any request is routed to are loaded a group at a time, at most
   ``group_bytes`` of weights in the compute dtype (at least one expert), through transformers'
   own checkpoint conversion: the group's checkpoint tensors renamed to experts ``0..n-1`` and
   merged into the fused tensors of an ``n``-expert module. Experts no token is routed to are
   never read. One group serves every request before the next one is loaded.
3. **Exact.** Each expert's output comes from the module's own eager forward with that expert
   alone (every other id mapped to the sentinel ``num_experts``, which the eager forward skips).
   Per request, the outputs are added in ascending expert order into one zero-initialised
   accumulator: the eager forward's own order of ``index_add_``, so the result equals the eager
   forward over all experts bit for bit. The reference computes experts eagerly in every mode
   (:func:`adaptgate.reference.skeleton.build_model`), so streamed equals full load.

The last group stays loaded until the layer is released: a later call of the layer in the same
pass whose experts it holds reads nothing. A call of the experts outside
:meth:`RoutedExperts.run` is served alone.

Only experts modules that transformers builds from per-expert checkpoint tensors named
``<module path>.<expert>.…`` (every id ``0..num_experts-1`` present) and whose parameters are
all per expert are grouped; any other layer loads whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenlet import getcurrent, greenlet

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.skeleton import LayeredModel


class _LayerCall(greenlet):
    """A call of the layer inside :meth:`RoutedExperts.run`: its experts call waits there."""


@dataclass
class _Request:
    hidden: torch.Tensor  # [tokens, H]
    index: torch.Tensor  # [tokens, top_k] routed expert ids
    weights: torch.Tensor  # [tokens, top_k] routing weights


@dataclass
class RoutedExperts:
    """One layer's routed experts, loaded by group into ``module`` (fused parameters)."""

    lm: LayeredModel
    path: str  # the module's path in the model, also the checkpoint names' prefix
    module: torch.nn.Module
    names: dict[int, list[str]]  # expert id -> its checkpoint tensors
    group_bytes: int = 0  # weights in the compute dtype a group may hold (0: one expert)
    loads: int = 0  # experts loaded so far
    weight_bytes: int = 0  # their checkpoint weight tensors' bytes (scales aside)
    _meta: dict[str, torch.nn.Parameter] = field(default_factory=dict)
    _group: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self._meta = dict(self.module.named_parameters())
        self.module.forward = self._call

    @property
    def num_experts(self) -> int:
        return len(self.names)

    @property
    def tensor_names(self) -> set[str]:
        return {n for names in self.names.values() for n in names}

    def expert_bytes(self, expert: int) -> int:
        from adaptgate.reference.memory import model_bytes

        return model_bytes(self.lm.weights, self.lm.dtype.itemsize, self.names[expert])

    def run(self, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """Each call's result (calls of the layer this module belongs to), the experts' work of
        all of them done together, group by group."""
        results: list[Any] = [None] * len(calls)
        step: list[tuple[int, _LayerCall, tuple[Any, ...]]]
        step = [(k, _LayerCall(call), ()) for k, call in enumerate(calls)]
        while step:
            waiting: list[tuple[int, _LayerCall, _Request]] = []
            for k, g, answer in step:
                value = g.switch(*answer)
                if isinstance(value, _Request) and not g.dead:
                    waiting.append((k, g, value))
                else:
                    results[k] = value
            answers = self._serve([r for _, _, r in waiting])
            step = [(k, g, (a,)) for (k, g, _), a in zip(waiting, answers, strict=True)]
        return results

    def release(self) -> None:
        """Puts the module back on the meta device at its full size."""
        from adaptgate.reference.memory import trim_heap

        if not self._group:
            return
        for name, param in self._meta.items():
            self.module._parameters[name] = param
        setattr(self.module, "num_experts", self.num_experts)  # noqa: B010 (typed as a Module attr)
        self._group = ()
        trim_heap()

    def _call(self, hidden: torch.Tensor, index: torch.Tensor, weights: torch.Tensor) -> Any:
        request = _Request(hidden, index, weights)
        current = getcurrent()
        if isinstance(current, _LayerCall):  # inside run(): wait for the group pass
            return current.parent.switch(request)
        return self._serve([request])[0]

    def _serve(self, requests: list[_Request]) -> list[torch.Tensor]:
        import torch

        out = [torch.zeros_like(r.hidden) for r in requests]
        if not requests:
            return out
        routed = torch.cat([r.index.reshape(-1) for r in requests]).unique().tolist()
        hit = sorted(int(e) for e in routed if 0 <= e < self.num_experts)
        forward = type(self.module).forward  # the class's: eager, see the module docstring
        for group in self._groups(hit):
            held = self._hold(group)
            for r, acc in zip(requests, out, strict=True):
                for expert in group:
                    mask = r.index == expert
                    if bool(mask.any()):
                        alone = torch.where(mask, held.index(expert), len(held))
                        alone = alone.to(r.index.dtype)
                        acc.add_(forward(self.module, r.hidden, alone, r.weights))
        return out

    def _groups(self, hit: list[int]) -> Iterator[tuple[int, ...]]:
        group: list[int] = []
        size = 0
        for expert in hit:
            one = self.expert_bytes(expert)
            if group and size + one > self.group_bytes:
                yield tuple(group)
                group, size = [], 0
            group.append(expert)
            size += one
        if group:
            yield tuple(group)

    def _hold(self, group: tuple[int, ...]) -> tuple[int, ...]:
        """The experts loaded, in the module's order: the group, or the loaded one holding it."""
        if not set(group) <= set(self._group):
            self._load(group)
        return self._group

    def _load(self, group: tuple[int, ...]) -> None:
        import torch

        self.release()
        t0 = time.perf_counter()
        for name, param in self._meta.items():
            shape = (len(group), *param.shape[1:])
            self.module._parameters[name] = torch.nn.Parameter(
                torch.empty(shape, dtype=param.dtype, device="meta"), requires_grad=False
            )
        state = {}  # each expert's tensors renamed to its place in the group
        for j, expert in enumerate(group):
            for name in self.names[expert]:
                rest = name.removeprefix(f"{self.path}.{expert}.")
                state[f"{self.path}.{j}.{rest}"] = self.lm.weights.read(name)
        self.lm.convert_state(state)
        del state
        setattr(self.module, "num_experts", len(group))  # noqa: B010
        self._group = group
        self.loads += len(group)
        tensors = self.lm.weights.ckpt.tensors
        self.weight_bytes += sum(tensors[n].nbytes for e in group for n in self.names[e])
        self.lm.load_seconds += time.perf_counter() - t0


def find_routed_experts(lm: LayeredModel) -> dict[int, RoutedExperts]:
    """Per layer index, the experts module read by group (see the module docstring)."""
    found: dict[int, RoutedExperts] = {}
    for i, layer in enumerate(lm.layers):
        unit = lm.units.get(f"layer.{i}", [])
        for sub, module in layer.named_modules():
            count = getattr(module, "num_experts", None)
            params = list(module.parameters(recurse=False))
            if not isinstance(count, int) or not params:
                continue
            path = f"{lm.layer_path}.{i}.{sub}"
            names: dict[int, list[str]] = {}
            for name in unit:
                expert, dot, _ = name.removeprefix(path + ".").partition(".")
                if name.startswith(path + ".") and dot and expert.isdigit():
                    names.setdefault(int(expert), []).append(name)
            if sorted(names) == list(range(count)) and all(
                p.dim() > 0 and p.shape[0] == count for p in params
            ):
                found[i] = RoutedExperts(lm, path, module, names)
    return found
