"""A loaded reference model and the teacher-forced forward + greedy continuation over prompts.

``ReferenceSession`` opens the checkpoint, tokenizer and model skeleton once; ``run`` can be
called several times (the KV-cache gate runs it once per cache format, passing its own
``cache_factory``). All prompts advance together: one pass over the layers per decode step, so
layer-streamed mode loads each layer once per step for every prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptgate.errors import UsageError
from adaptgate.reference.engine import Engine
from adaptgate.reference.kvcache import CacheFactory
from adaptgate.reference.memory import should_stream
from adaptgate.reference.prompts import EncodedPrompt
from adaptgate.reference.skeleton import LayeredModel, build_model
from adaptgate.reference.weights import WeightSource, open_weights

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

DTYPES = ("float32", "bfloat16")


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
    stop_reason: str = "length"


@dataclass
class RunStats:
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    passes: int = 0


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


class ReferenceSession:
    def __init__(
        self,
        model: str,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        stream: bool | None = None,
        simulate: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoTokenizer

        from adaptgate.checkpoint import open_checkpoint

        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}", fix=f"use one of: {', '.join(DTYPES)}")
        self.torch_dtype = getattr(torch, dtype)
        self.dtype = dtype
        self.device = device
        self.ckpt = open_checkpoint(model)
        self.weights = open_weights(self.ckpt)
        self.stream = (
            should_stream(self.weights, torch.finfo(self.torch_dtype).bits // 8, device)
            if stream is None
            else stream
        )
        self.lm: LayeredModel = build_model(self.weights, device, self.torch_dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.ckpt.root))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"cannot load the tokenizer of {self.ckpt.root}: {str(exc).splitlines()[0]}",
                fix="the model directory needs its tokenizer files",
            ) from None
        self.eos_token_ids = _eos_ids(self.weights, self.tokenizer)
        self.simulate = simulate
        self.simulation = None
        if simulate is not None:
            from adaptgate.reference.simulate import Simulation

            self.simulation = Simulation(self.lm, simulate)
        self._load_seconds = 0.0
        self._wrap_load()
        if not self.stream:
            self.lm.load_all()

    def _wrap_load(self) -> None:
        original = self.lm.load

        def timed(unit: str) -> None:
            t0 = time.perf_counter()
            original(unit)
            self._load_seconds += time.perf_counter() - t0

        self.lm.load = timed  # type: ignore[method-assign]

    @property
    def mode(self) -> str:
        return "streamed" if self.stream else "full"

    def units_per_pass(self) -> int:
        return self.lm.num_layers + 1

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
        ``capture`` layers), then ``max_new_tokens`` greedy tokens with their log-probabilities."""
        import torch

        if max_new_tokens < 0 or top_k < 1:
            raise UsageError("max_new_tokens must be >= 0 and top_k >= 1")
        t0, load0 = time.perf_counter(), self._load_seconds
        engine = Engine(
            self.lm,
            stream=self.stream,
            cache_factory=cache_factory,
            on_unit=on_unit,
            simulation=self.simulation,
        )
        seqs = [engine.new_sequence() for _ in prompts]
        ids = [torch.tensor([p.token_ids], dtype=torch.long) for p in prompts]
        first = engine.step(seqs, ids, capture=capture or set())
        stats = RunStats(passes=1)
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
            outs = engine.step(
                [seqs[k] for k in active],
                [torch.tensor([[feed[k]]], dtype=torch.long) for k in active],
            )
            stats.passes += 1
            last = {k: o.logits[-1] for k, o in zip(active, outs, strict=True)}
        stats.load_seconds = self._load_seconds - load0
        stats.total_seconds = time.perf_counter() - t0
        return gens, stats

    @staticmethod
    def _choose(gen: Generation, logits: torch.Tensor, top_k: int) -> int:
        import torch

        logprobs = torch.log_softmax(logits.to(torch.float64), dim=-1)
        token = int(torch.argmax(logits).item())
        k = min(top_k, logprobs.numel())
        values, indices = torch.topk(logprobs, k)
        gen.tokens.append(token)
        gen.logprobs.append(float(logprobs[token]))
        gen.step_logits.append(logits)
        gen.topk_ids.append(indices.to(torch.int64))
        gen.topk_logprobs.append(values.to(torch.float32))
        return token

    def total_load_seconds(self) -> float:
        return self._load_seconds

    def describe(self) -> dict[str, Any]:
        cfg = self.lm.model.config
        return {
            "attn_implementation": getattr(cfg, "_attn_implementation", None),
            "num_layers": self.lm.num_layers,
        }
