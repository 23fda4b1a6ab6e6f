"""A loaded reference model: teacher-forced scoring of given continuations, or greedy decoding.

``ReferenceSession`` opens the checkpoint, tokenizer and model skeleton once; ``score`` and
``run`` can be called several times (the KV-cache gate runs once per cache format, passing its
own ``cache_factory``). All prompts advance together through the layers.

- ``score``: prompt + given continuation in ONE pass over the weights, whatever the number of
  continuation tokens. How the gates judge a served or converted model: the reference's
  distribution at every position of the other side's text.
- ``run``: greedy decoding, one pass per generated token (``adaptgate reference`` without
  continuations; free-running behaviour).

In streamed mode, when more passes follow (greedy decoding, or ``score(keep=True)``), units the
memory budget allows stay loaded after their first pass (see
:mod:`adaptgate.reference.skeleton`); ``RunStats`` records the checkpoint bytes each pass read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.errors import UsageError
from adaptgate.reference.engine import Engine, Sequence, StepOutput
from adaptgate.reference.kvcache import CacheFactory
from adaptgate.reference.memory import memory_budget, should_stream
from adaptgate.reference.prompts import EncodedPrompt
from adaptgate.reference.skeleton import LayeredModel, build_model
from adaptgate.reference.weights import WeightSource, open_weights

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

DTYPES = ("float32", "bfloat16")
ELEMENT_SIZE = {"float32": 4, "bfloat16": 2}  # bytes per weight in each compute dtype


@dataclass
class Generation:
    """One prompt's outputs. Tensors are float32 on the CPU."""

    prompt_logits: torch.Tensor  # [T, V]
    hidden: dict[str, torch.Tensor]  # "embed" / "<layer>" -> [T, H]
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    step_logits: list[torch.Tensor] = field(default_factory=list)  # N x [V]
    topk_ids: list[torch.Tensor] = field(default_factory=list)  # N x [K] int64
    topk_logprobs: list[torch.Tensor] = field(default_factory=list)  # N x [K]
    argmax: list[int] = field(default_factory=list)  # the reference's top token per position
    ranks: list[int] = field(default_factory=list)  # of ``tokens`` under the reference, 1 = top
    stop_reason: str = "length"


@dataclass
class RunStats:
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    bytes_read: list[int] = field(default_factory=list)  # checkpoint bytes read, per pass
    experts_read: list[int] = field(default_factory=list)  # routed experts read by group, per pass
    cache_hits: int = 0

    @property
    def passes(self) -> int:
        return len(self.bytes_read)


def _eos_ids(weights: WeightSource, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids: set[int] = set()
    for cfg in (weights.ckpt.generation_config or {}, weights.ckpt.text_config()):
        value = cfg.get("eos_token_id")
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids |= {int(v) for v in value if isinstance(v, int)}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot load the tokenizer of {model_dir}: {str(exc).splitlines()[0]}",
            fix="the model directory needs its tokenizer files",
        ) from None


class ReferenceSession:
    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        stream: bool | None = None,
        simulate: str | None = None,
        max_memory: int | None = None,
    ) -> None:
        """``stream`` None: stream when the model does not fit the memory budget (``max_memory``
        bytes, default :func:`~adaptgate.reference.memory.memory_budget`); in streamed mode the
        budget, less one unit being streamed, is the RAM cache of dequantized units, and MoE
        layers read their routed experts by group (not with ``simulate``, whose weights are
        recognised by storage: :mod:`adaptgate.reference.experts`)."""
        import torch

        from adaptgate.checkpoint import open_checkpoint

        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}", fix=f"use one of: {', '.join(DTYPES)}")
        self.torch_dtype = getattr(torch, dtype)
        self.dtype = dtype
        self.device = device
        self.ckpt = open_checkpoint(model)
        self.weights = open_weights(self.ckpt)
        self.memory_budget = memory_budget(max_memory)
        self.stream = (
            should_stream(self.weights, ELEMENT_SIZE[dtype], device, self.memory_budget)
            if stream is None
            else stream
        )
        self.lm: LayeredModel = build_model(self.weights, device, self.torch_dtype)
        if self.stream and simulate is None:
            self.lm.stream_experts()
        if self.stream:
            self.lm.cache_budget = max(0, (self.memory_budget or 0) - self.lm.largest_unit_bytes())
        self.tokenizer = load_tokenizer(self.ckpt.root)
        self.eos_token_ids = _eos_ids(self.weights, self.tokenizer)
        self.simulate = simulate
        self.simulation = None
        if simulate is not None:
            from adaptgate.reference.simulate import Simulation

            self.simulation = Simulation(self.lm, simulate)
        if not self.stream:
            self.lm.load_all()

    @property
    def mode(self) -> str:
        return "streamed" if self.stream else "full"

    def units_per_pass(self) -> int:
        return self.lm.num_layers + 1

    def _engine(
        self, cache_factory: CacheFactory | None, on_unit: Callable[[str], None] | None
    ) -> Engine:
        return Engine(
            self.lm,
            stream=self.stream,
            cache_factory=cache_factory,
            on_unit=on_unit,
            simulation=self.simulation,
        )

    def _pass(
        self,
        engine: Engine,
        stats: RunStats,
        seqs: list[Sequence],
        ids: list[torch.Tensor],
        capture: set[int] | None = None,
        *,
        keep: bool,
    ) -> list[StepOutput]:
        """One ``Engine.step`` (one pass over the weights), with the bytes it read."""
        read0, hits0, experts0 = self.weights.bytes_read, self.lm.cache_hits, self.experts_read()
        outs = engine.step(seqs, ids, capture=capture, keep=keep)
        stats.bytes_read.append(self.weights.bytes_read - read0)
        stats.experts_read.append(self.experts_read() - experts0)
        stats.cache_hits += self.lm.cache_hits - hits0
        return outs

    def experts_read(self) -> int:
        """Routed experts read by group so far (each layer's expert counts once per read)."""
        return sum(e.loads for e in self.lm.experts.values())

    def routed_experts(self) -> int:
        """Routed experts of the layers that read them by group (0: none does)."""
        return sum(e.num_experts for e in self.lm.experts.values())

    def _finish(self, stats: RunStats, t0: float, load0: float) -> RunStats:
        stats.load_seconds = self.lm.load_seconds - load0
        stats.total_seconds = time.perf_counter() - t0
        return stats

    def score(
        self,
        prompts: list[EncodedPrompt],
        continuations: list[list[int]],
        *,
        top_k: int = 20,
        capture: set[int] | None = None,
        cache_factory: CacheFactory | None = None,
        on_unit: Callable[[str], None] | None = None,
        keep: bool = False,
    ) -> tuple[list[Generation], RunStats]:
        """Teacher-forced scoring: each prompt followed by its continuation, every prompt in ONE
        pass over the weights. Per prompt, the same fields ``run`` gives (prompt logits, hidden
        states of ``capture`` layers at the prompt positions), and for continuation token ``n``
        the distribution it is scored under (the logits at position ``T - 1 + n``), its argmax,
        the token's log-probability and rank, and the top-k: ``tokens`` are the given ones.
        ``keep``: the caller will pass over the weights again, so fill the RAM cache."""
        import torch

        if len(continuations) != len(prompts) or top_k < 1:
            raise UsageError(
                f"{len(continuations)} continuations for {len(prompts)} prompts (top_k {top_k})",
                fix="give one continuation (possibly empty) per prompt and top_k >= 1",
            )
        t0, load0 = time.perf_counter(), self.lm.load_seconds
        engine = self._engine(cache_factory, on_unit)
        seqs = [engine.new_sequence() for _ in prompts]
        ids = [
            torch.tensor([p.token_ids + list(c)], dtype=torch.long)
            for p, c in zip(prompts, continuations, strict=True)
        ]
        stats = RunStats()
        outs = self._pass(engine, stats, seqs, ids, capture or set(), keep=keep)
        gens = []
        for prompt, forced, out in zip(prompts, continuations, outs, strict=True):
            n = len(prompt.token_ids)  # views: the pass's logits are held once
            gen = Generation(
                prompt_logits=out.logits[:n],
                hidden={key: h[:n] for key, h in out.hidden.items()},
            )
            for step, token in enumerate(forced):
                self._choose(gen, out.logits[n - 1 + step], top_k, token)
            gens.append(gen)
        return gens, self._finish(stats, t0, load0)

    def run(
        self,
        prompts: list[EncodedPrompt],
        *,
        max_new_tokens: int = 32,
        top_k: int = 20,
        capture: set[int] | None = None,
        cache_factory: CacheFactory | None = None,
        on_unit: Callable[[str], None] | None = None,
        stop_at_eos: bool = True,
    ) -> tuple[list[Generation], RunStats]:
        """Teacher-forced forward over each prompt (logits at every position, hidden states of
        ``capture`` layers), then ``max_new_tokens`` greedy tokens with their log-probabilities:
        one pass over the weights per token."""
        import torch

        if max_new_tokens < 0 or top_k < 1:
            raise UsageError("max_new_tokens must be >= 0 and top_k >= 1")
        t0, load0 = time.perf_counter(), self.lm.load_seconds
        engine = self._engine(cache_factory, on_unit)
        seqs = [engine.new_sequence() for _ in prompts]
        ids = [torch.tensor([p.token_ids], dtype=torch.long) for p in prompts]
        stats = RunStats()
        keep = max_new_tokens > 1  # later passes follow: fill the RAM cache
        first = self._pass(engine, stats, seqs, ids, capture or set(), keep=keep)
        gens = [Generation(prompt_logits=o.logits, hidden=o.hidden) for o in first]
        last = {k: o.logits[-1] for k, o in enumerate(first)}
        for step in range(max_new_tokens):
            feed: dict[int, int] = {}
            for k, logits in last.items():
                token = self._choose(gens[k], logits, top_k)
                if stop_at_eos and token in self.eos_token_ids:
                    gens[k].stop_reason = "eos"
                elif step < max_new_tokens - 1:
                    feed[k] = token
            if not feed:
                break
            active = sorted(feed)
            outs = self._pass(
                engine,
                stats,
                [seqs[k] for k in active],
                [torch.tensor([[feed[k]]], dtype=torch.long) for k in active],
                keep=keep,
            )
            last = {k: o.logits[-1] for k, o in zip(active, outs, strict=True)}
        return gens, self._finish(stats, t0, load0)

    @staticmethod
    def _choose(
        gen: Generation, logits: torch.Tensor, top_k: int, forced: int | None = None
    ) -> int:
        """Appends one position's scores to ``gen``: of ``forced``, or of the greedy token."""
        import torch

        logprobs = torch.log_softmax(logits.to(torch.float64), dim=-1)
        best = int(torch.argmax(logits).item())
        token = best if forced is None else forced
        k = min(top_k, logprobs.numel())
        values, indices = torch.topk(logprobs, k)
        gen.tokens.append(token)
        gen.argmax.append(best)
        gen.ranks.append(int((logprobs > logprobs[token]).sum().item()) + 1)
        gen.logprobs.append(float(logprobs[token]))
        gen.step_logits.append(logits)
        gen.topk_ids.append(indices.to(torch.int64))
        gen.topk_logprobs.append(values.to(torch.float32))
        return token

    def total_load_seconds(self) -> float:
        return self.lm.load_seconds

    def describe(self) -> dict[str, Any]:
        cfg = self.lm.model.config
        return {
            "attn_implementation": getattr(cfg, "_attn_implementation", None),
            "num_layers": self.lm.num_layers,
        }
