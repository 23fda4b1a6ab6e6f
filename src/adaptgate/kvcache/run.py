"""The measurement: greedy generations and teacher-forced steps with each simulated cache.

The model, tokenizer and weights come from the precision gate's reference
(:class:`adaptgate.reference.session.ReferenceSession`, full load); the forward is
transformers' own, with the simulated cache of :mod:`adaptgate.kvcache.sim`. Rows of one batch
share the prompt (no padding): row 0 is the unquantized baseline, rows 1.. the formats.

0. **Calibration** (``--scales calibrated``) -- one prefill of every prompt, |K|/|V| maxima
   per channel, like a calibration tool running its calibration text.
1. **Free-running** -- every row decodes ``new_tokens`` greedy tokens on its own (EOS ignored,
   like vLLM's ``ignore_eos``, so every prompt yields the same number of steps): first
   divergence, exact match and degeneration against the baseline row.
2. **Teacher-forced** -- all rows are fed the prompt and then the baseline's continuation as
   one chunk. K/V are quantized token by token with static scales, so the chunk's causal
   attention over the stored cache is exactly the decode steps' (float rounding aside): the
   per-step KL and top-1 agreement compare each format with the baseline at the same
   context, with no compounding after a divergence. The baseline row's K/V (prompt and
   continuation) feed the outlier scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptgate.kvcache.scan import CalibrationAccumulator, ScanAccumulator
from adaptgate.kvcache.sim import Arm, sim_cache

if TYPE_CHECKING:
    import torch

    from adaptgate.reference.prompts import EncodedPrompt
    from adaptgate.reference.session import ReferenceSession

Progress = Callable[[int], None]


@dataclass
class ModelShape:
    num_layers: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    attention_bias: bool
    qk_norm: bool
    architecture: str
    model_dtype: str


def model_shape(session: ReferenceSession) -> ModelShape:
    model = session.lm.model
    cfg = model.config.get_text_config()
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    layer = session.lm.layers[0]
    attn = next((m for n, m in layer.named_children() if "attn" in n), None)
    names = {n for n, _ in attn.named_modules()} if attn is not None else set()
    bias = attn is not None and getattr(getattr(attn, "k_proj", None), "bias", None) is not None
    arch = (session.ckpt.config.get("architectures") or [type(model).__name__])[0]
    return ModelShape(
        num_layers=session.lm.num_layers,
        kv_heads=kv_heads,
        head_dim=head_dim,
        hidden_size=int(cfg.hidden_size),
        attention_bias=bool(bias),
        qk_norm="k_norm" in names,
        architecture=str(arch),
        model_dtype=session.ckpt.config_dtype() or "bfloat16",
    )


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Temporarily sets torch's intra-op threads (None: leave as is)."""
    import torch

    if count is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def auto_threads(shape: ModelShape) -> int | None:
    """One thread for tiny models: their matrices are too small to split, and on a shared
    2-core machine two threads made a decode step ~6x slower (measured: 4.4 vs 26 ms)."""
    return 1 if shape.hidden_size < 1024 else None


@dataclass
class FormatRun:
    tokens: list[list[int]] = field(default_factory=list)  # per prompt
    logits: Any = None  # LogitAccumulator over every step of every prompt
    per_step: list[Any] = field(default_factory=list)  # LogitAccumulator per step index
    nonfinite: int = 0


@dataclass
class Simulation:
    baseline: list[list[int]]  # the baseline's greedy tokens per prompt
    formats: dict[str, FormatRun]
    scan: ScanAccumulator
    seconds: float = 0.0


def _forward(
    model: Any,
    ids: torch.Tensor,
    cache: Any,
    *,
    keep: int | None = None,
    mask: torch.Tensor | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    kwargs: dict[str, Any] = {"input_ids": ids, "past_key_values": cache, "use_cache": True}
    if keep is not None:
        kwargs["logits_to_keep"] = keep
    if mask is not None:
        kwargs["attention_mask"] = mask
        kwargs["position_ids"] = positions
    out = model(**kwargs)
    return out.logits.float()


@dataclass
class _Batch:
    """Every prompt x every arm as rows of one left-padded batch (row = prompt * arms + arm).

    Pads are masked out of attention and get no positions, as in transformers' batched
    generation; the scan and the metrics only ever read real tokens."""

    ids: torch.Tensor  # [rows, longest prompt]
    mask: torch.Tensor  # [rows, tokens so far] int64
    pads: list[int]  # per prompt
    arms_per_prompt: int

    @classmethod
    def build(cls, prompts: list[list[int]], arms_per_prompt: int, pad_id: int) -> _Batch:
        import torch

        longest = max(len(p) for p in prompts)
        ids, mask, pads = [], [], []
        for p in prompts:
            pad = longest - len(p)
            pads.append(pad)
            for _ in range(arms_per_prompt):
                ids.append([pad_id] * pad + p)
                mask.append([0] * pad + [1] * len(p))
        return cls(
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(mask, dtype=torch.long),
            pads,
            arms_per_prompt,
        )

    def extend(self, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Grows the mask by ``tokens`` real tokens; returns (mask, their positions)."""
        import torch

        start = self.mask.sum(dim=1, keepdim=True)  # next position of each row
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], tokens)], dim=1)
        return self.mask, start + torch.arange(tokens).unsqueeze(0)

    def prefill_positions(self) -> torch.Tensor:
        return (self.mask.cumsum(dim=1) - 1).clamp_min(0)


def calibrate(
    session: ReferenceSession, shape: ModelShape, prompts: list[EncodedPrompt]
) -> CalibrationAccumulator:
    """|K|/|V| maxima per channel over a prefill of every prompt, as calibration tools run
    their calibration text (generated tokens are not seen: the scan shows whether they
    exceed the calibrated range)."""
    import torch

    cal = CalibrationAccumulator(shape.num_layers)

    def observe(layer: int, k: torch.Tensor, v: torch.Tensor, _prefill: bool) -> None:
        cal.add(layer, k[0], v[0])

    model = session.lm.model
    with torch.inference_mode():
        for p in prompts:
            cache = sim_cache(model.config, [None], observe)
            _forward(model, torch.tensor([p.token_ids], dtype=torch.long), cache, keep=1)
    return cal


def buckets(lengths: list[int], slack: int = 64) -> list[list[int]]:
    """Prompt indices grouped by length so padding stays small: sorted by length, a group
    takes the next prompt while ``longest <= 2 * shortest + slack``. (Padding every prompt to
    the longest would make every row carry the long prompt's cache.)"""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= 2 * lengths[groups[-1][0]] + slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def simulate(
    session: ReferenceSession,
    shape: ModelShape,
    prompts: list[EncodedPrompt],
    arms: list[Arm],
    new_tokens: int,
    tick: Progress | None = None,
    *,
    logits_budget: int = 256 * 2**20,
) -> Simulation:
    """Free-running then teacher-forced passes; prompts of similar length share a batch in
    which arm 0 of each prompt is the unquantized baseline."""
    import torch

    from adaptgate.precision.metrics import LogitAccumulator

    t0 = time.perf_counter()
    runs = {
        a.name: FormatRun(
            logits=LogitAccumulator(), per_step=[LogitAccumulator() for _ in range(new_tokens)]
        )
        for a in arms
    }
    scan = ScanAccumulator(shape.num_layers, shape.kv_heads, shape.head_dim, arms)
    baseline: list[list[int]] = [[] for _ in prompts]
    tokens: dict[str, list[list[int]]] = {a.name: [[] for _ in prompts] for a in arms}
    with torch.inference_mode():
        for group in buckets([len(p.token_ids) for p in prompts]):
            _simulate_group(
                session, [prompts[i].token_ids for i in group], arms, new_tokens, tick,
                logits_budget, runs, scan,
                out_baseline=[baseline[i] for i in group],
                out_tokens={k: [v[i] for i in group] for k, v in tokens.items()},
            )  # fmt: skip
    for name, run in runs.items():
        run.tokens = tokens[name]
    return Simulation(baseline, runs, scan, time.perf_counter() - t0)


def _simulate_group(
    session: ReferenceSession,
    token_lists: list[list[int]],
    arms: list[Arm],
    n: int,
    tick: Progress | None,
    logits_budget: int,
    runs: dict[str, FormatRun],
    scan: ScanAccumulator,
    *,
    out_baseline: list[list[int]],
    out_tokens: dict[str, list[list[int]]],
) -> None:
    """One left-padded batch of ``len(token_lists) x (1 + len(arms))`` rows; fills the
    ``out_*`` lists (one per prompt, in order) and feeds ``runs`` and ``scan``."""
    import torch

    model = session.lm.model
    width = 1 + len(arms)
    count = len(token_lists)
    row_arms = [None, *arms] * count
    pad_id = int(session.tokenizer.pad_token_id or session.tokenizer.eos_token_id or 0)

    # 1. free-running
    batch = _Batch.build(token_lists, width, pad_id)
    cache = sim_cache(model.config, row_arms)
    logits = _forward(
        model, batch.ids, cache, keep=1, mask=batch.mask, positions=batch.prefill_positions()
    )[:, -1]
    for step in range(n):
        nxt = torch.argmax(logits, dim=-1).tolist()  # first index on ties, as the reference
        for p in range(count):
            out_baseline[p].append(int(nxt[p * width]))
            for j, arm in enumerate(arms, start=1):
                out_tokens[arm.name][p].append(int(nxt[p * width + j]))
        if tick is not None:
            tick(count)
        if step == n - 1:
            break
        mask, pos = batch.extend(1)
        ids = torch.tensor(nxt, dtype=torch.long).view(-1, 1)
        logits = _forward(model, ids, cache, keep=1, mask=mask, positions=pos)[:, -1]

    # 2. teacher-forced along each prompt's baseline continuation; row p * width feeds the scan
    valid: list[torch.Tensor | None] = [None]

    def observe(layer: int, k: torch.Tensor, v: torch.Tensor, _prefill: bool) -> None:
        keep = valid[0]
        for p in range(count):
            r = p * width
            if keep is None:
                scan.add(layer, k[r], v[r])
            else:
                scan.add(layer, k[r][:, keep[r]], v[r][:, keep[r]])

    batch = _Batch.build(token_lists, width, pad_id)
    cache = sim_cache(model.config, row_arms, observe)
    valid[0] = batch.mask.bool()
    first = _forward(
        model, batch.ids, cache, keep=1, mask=batch.mask, positions=batch.prefill_positions()
    )[:, -1:]
    valid[0] = None
    _accumulate(runs, arms, first, width, 0)
    rows, vocab = first.shape[0], first.shape[-1]
    segment = max(1, min(n - 1, logits_budget // max(1, rows * vocab * 4)))
    cont = torch.tensor([out_baseline[r // width][:-1] for r in range(rows)], dtype=torch.long)
    for start in range(0, n - 1, segment):
        chunk = cont[:, start : start + segment]
        mask, pos = batch.extend(chunk.shape[1])
        out = _forward(model, chunk, cache, mask=mask, positions=pos)
        _accumulate(runs, arms, out, width, 1 + start)


def _accumulate(
    runs: dict[str, FormatRun], arms: list[Arm], logits: torch.Tensor, width: int, first: int
) -> None:
    """``logits``: ``[rows, steps, vocab]`` for steps ``first..``; row ``p * width`` is prompt
    ``p``'s baseline, the next ``len(arms)`` rows its formats."""
    import torch

    for p in range(logits.shape[0] // width):
        base = logits[p * width]
        for j, arm in enumerate(arms, start=1):
            run = runs[arm.name]
            test = logits[p * width + j]
            finite = torch.isfinite(test).all(dim=-1)
            run.nonfinite += int((~finite).sum())
            test = torch.where(finite.unsqueeze(-1), test, torch.zeros_like(test))
            run.logits.add(base, test)
            for s in range(base.shape[0]):
                run.per_step[first + s].add(base[s : s + 1], test[s : s + 1])
