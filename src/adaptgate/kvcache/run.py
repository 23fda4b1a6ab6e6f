"""The measurement of mode full: greedy generations and teacher-forced steps with each simulated
cache (mode teacher-forced, one pass over the weights for models that do not fit: :mod:`.forced`).

The model, tokenizer and weights come from the precision gate's reference
(:class:`adaptgate.reference.session.ReferenceSession`, full load); the forward is
transformers' own, with the simulated cache of :mod:`adaptgate.kvcache.sim`. Prompts of similar
length share a left-padded batch (:func:`buckets`) in which each prompt has a row per arm: the
unquantized baseline, then one per format.

0. **Calibration** (``--scales calibrated``) -- one prefill of every prompt, |K|/|V| maxima
   per channel, like a calibration tool running its calibration text.
1. **Prefill** -- once per batch; the free-running pass continues from its cache, the
   teacher-forced pass from a copy of it. The baseline rows' prompt K/V feed the outlier scan.
2. **Free-running** -- every row decodes ``new_tokens`` greedy tokens on its own (EOS ignored,
   like vLLM's ``ignore_eos``, so every prompt yields the same number of steps): first
   divergence, exact match and degeneration against the baseline row.
3. **Teacher-forced** -- all rows are fed the baseline's continuation in chunks. K/V are
   quantized token by token with static scales, so the chunk's causal attention over the
   stored cache is exactly the decode steps' (float rounding aside): the per-step KL and top-1
   agreement compare each format with the baseline at the same context, with no compounding
   after a divergence. The baseline rows' continuation K/V feed the outlier scan.

Batches are independent: when torch runs one thread, as many run at once as the process has
CPUs (Python threads; torch releases the GIL in its kernels), each into its own accumulators,
merged in batch order afterwards. Each batch computes what it computes alone; the totals differ
from one accumulator fed batch after batch only in how float sums are grouped (~1e-16). Within
a batch, a chunk's metrics are accumulated on another thread while the next chunk runs.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptgate.kvcache.scan import CalibrationAccumulator, ScanAccumulator
from adaptgate.kvcache.sim import Arm, gqa_attention, sim_cache

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
    2-core machine two threads made a decode step ~6x slower (measured: 4.4 vs 26 ms; on the
    SmolLM2-135M demo model, with other work on the machine, 1.7 s vs 0.16 s for 15 rows).
    The other CPUs run other batches instead (:func:`simulate`)."""
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
    free_running: bool = True  # False: teacher-forced only (tokens are argmaxes, see .forced)


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
    """Rows of one left-padded batch. Pads are masked out of attention and get no positions, as
    in transformers' batched generation; the scan and the metrics only ever read real tokens."""

    ids: torch.Tensor  # [rows, longest prompt]
    mask: torch.Tensor  # [rows, tokens so far] int64

    @classmethod
    def build(cls, prompts: list[list[int]], rows_per_prompt: int, pad_id: int) -> _Batch:
        """Row ``p * rows_per_prompt + j`` is prompt ``p``."""
        import torch

        longest = max(len(p) for p in prompts)
        ids, mask = [], []
        for p in prompts:
            pad = longest - len(p)
            for _ in range(rows_per_prompt):
                ids.append([pad_id] * pad + p)
                mask.append([0] * pad + [1] * len(p))
        return cls(torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long))

    def select(self, rows: torch.Tensor) -> None:
        """Keeps (and repeats) the given rows, in that order."""
        self.ids, self.mask = self.ids[rows], self.mask[rows]

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


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as ``taskset`` or a container sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def simulate(
    session: ReferenceSession,
    shape: ModelShape,
    prompts: list[EncodedPrompt],
    arms: list[Arm],
    new_tokens: int,
    tick: Progress | None = None,
    *,
    workers: int | None = None,
    logits_budget: int = 256 * 2**20,
) -> Simulation:
    """The passes of the module doc over every batch of prompts (:func:`buckets`).
    ``workers``: batches run at once; None: the usable CPUs when torch runs one thread, else 1.
    ``logits_budget``: bytes of teacher-forced logits per chunk."""
    import torch

    from adaptgate.metrics.logits import merge_logits

    t0 = time.perf_counter()
    groups = buckets([len(p.token_ids) for p in prompts])
    if workers is None:
        workers = usable_cpus() if torch.get_num_threads() == 1 else 1
    lock, stop = threading.Lock(), threading.Event()

    def step_done(count: int) -> None:
        if stop.is_set():  # another batch failed or was interrupted: end this one too
            raise RuntimeError("simulation stopped")
        if tick is not None:
            with lock:
                tick(count)

    def run_group(group: list[int]) -> _Part:
        with torch.inference_mode():  # per thread
            token_lists = [prompts[i].token_ids for i in group]
            return _simulate_group(
                session, shape, token_lists, arms, new_tokens, step_done, logits_budget
            )

    with gqa_attention(session.lm.model):
        if workers > 1 and len(groups) > 1:
            with ThreadPoolExecutor(min(workers, len(groups))) as pool:
                futures = [pool.submit(run_group, g) for g in groups]
                try:
                    for done in as_completed(futures):
                        done.result()  # the first failure, as it happens
                except BaseException:
                    stop.set()
                    raise
                parts = [f.result() for f in futures]
        else:
            parts = [run_group(g) for g in groups]

    runs = new_runs(arms, len(prompts), new_tokens)
    scan = ScanAccumulator(shape.num_layers, shape.kv_heads, shape.head_dim, arms)
    baseline: list[list[int]] = [[] for _ in prompts]
    for group, part in zip(groups, parts, strict=True):  # in batch order: deterministic sums
        for j, i in enumerate(group):
            baseline[i] = part.baseline[j]
        for name, run in runs.items():
            got = part.runs[name]
            for j, i in enumerate(group):
                run.tokens[i] = got.tokens[j]
            merge_logits(run.logits, got.logits)
            for total, step in zip(run.per_step, got.per_step, strict=True):
                merge_logits(total, step)
            run.nonfinite += got.nonfinite
        scan.merge(part.scan)
    return Simulation(baseline, runs, scan, time.perf_counter() - t0)


def new_runs(arms: list[Arm], prompts: int, steps: int) -> dict[str, FormatRun]:
    from adaptgate.metrics.logits import LogitAccumulator

    return {
        a.name: FormatRun(
            tokens=[[] for _ in range(prompts)],
            logits=LogitAccumulator(),
            per_step=[LogitAccumulator() for _ in range(steps)],
        )
        for a in arms
    }


@dataclass
class _Part:
    """One batch's outputs, per prompt of the batch."""

    baseline: list[list[int]]
    runs: dict[str, FormatRun]
    scan: ScanAccumulator


def _simulate_group(
    session: ReferenceSession,
    shape: ModelShape,
    token_lists: list[list[int]],
    arms: list[Arm],
    n: int,
    tick: Progress,
    logits_budget: int,
) -> _Part:
    """One left-padded batch of ``len(token_lists) x (1 + len(arms))`` rows: row
    ``p * width`` is prompt ``p``'s baseline, the next ``len(arms)`` rows its formats."""
    import torch

    model, count, width = session.lm.model, len(token_lists), 1 + len(arms)
    part = _Part(
        baseline=[[] for _ in token_lists],
        runs=new_runs(arms, count, n),
        scan=ScanAccumulator(shape.num_layers, shape.kv_heads, shape.head_dim, arms),
    )
    row_arms = [None, *arms] * count
    pad_id = int(session.tokenizer.pad_token_id or session.tokenizer.eos_token_id or 0)
    batch = _Batch.build(token_lists, width, pad_id)
    # what the scan reads of each baseline row in the current forward: the prompt's real
    # (unpadded) tokens, every token of a continuation chunk (None), nothing while free-running
    scanning = [True]
    keep: list[torch.Tensor | None] = [batch.mask.bool()]

    def observe(layer: int, k: torch.Tensor, v: torch.Tensor, _prefill: bool) -> None:
        if not scanning[0]:
            return
        for p in range(count):
            r, real = p * width, keep[0]
            if real is None:
                part.scan.add(layer, k[r], v[r])
            else:
                part.scan.add(layer, k[r][:, real[r]], v[r][:, real[r]])

    # 1. the prompt, once for both passes: the teacher-forced pass starts from a copy of its cache
    cache = sim_cache(model.config, row_arms, observe)
    positions = batch.prefill_positions()
    first = _forward(model, batch.ids, cache, keep=1, mask=batch.mask, positions=positions)
    first = first[:, -1:]
    scanning[0], keep[0] = False, None
    prompt_cache, prompt_mask = copy.deepcopy(cache), batch.mask

    # 2. free-running
    logits = first[:, -1]
    for step in range(n):
        nxt = torch.argmax(logits, dim=-1).tolist()  # first index on ties, as the reference
        for p in range(count):
            part.baseline[p].append(int(nxt[p * width]))
            for j, arm in enumerate(arms, start=1):
                part.runs[arm.name].tokens[p].append(int(nxt[p * width + j]))
        tick(count)
        if step == n - 1:
            break
        mask, pos = batch.extend(1)
        ids = torch.tensor(nxt, dtype=torch.long).view(-1, 1)
        logits = _forward(model, ids, cache, keep=1, mask=mask, positions=pos)[:, -1]
    del cache

    # 3. teacher-forced along each prompt's baseline continuation; a chunk's metrics are
    # accumulated (in order, on another thread) while the next chunk runs
    cache, batch.mask, scanning[0] = prompt_cache, prompt_mask, True
    rows, vocab = first.shape[0], first.shape[-1]
    segment = max(1, min(n - 1, logits_budget // max(1, rows * vocab * 4)))
    cont = torch.tensor([part.baseline[r // width][:-1] for r in range(rows)], dtype=torch.long)

    def accumulate(logits: torch.Tensor, step: int) -> None:
        with torch.inference_mode():
            accumulate_rows(part.runs, arms, logits, width, step)

    with ThreadPoolExecutor(1) as accumulator:
        pending = accumulator.submit(accumulate, first, 0)
        for start in range(0, n - 1, segment):
            chunk = cont[:, start : start + segment]
            mask, pos = batch.extend(chunk.shape[1])
            out = _forward(model, chunk, cache, mask=mask, positions=pos)
            pending.result()  # at most one chunk's logits waits
            pending = accumulator.submit(accumulate, out, 1 + start)
        pending.result()
    return part


def accumulate_rows(
    runs: dict[str, FormatRun], arms: list[Arm], logits: torch.Tensor, width: int, first: int
) -> None:
    """``logits``: ``[rows, steps, vocab]`` for steps ``first..``; row ``p * width`` is prompt
    ``p``'s baseline, the next ``len(arms)`` rows its formats. Every step feeds the format's
    total and that step's accumulator."""
    import torch

    from adaptgate.metrics.logits import add_logits_per_position

    steps = logits.shape[1]
    for p in range(logits.shape[0] // width):
        base = logits[p * width]
        for j, arm in enumerate(arms, start=1):
            run = runs[arm.name]
            test = logits[p * width + j]
            finite = torch.isfinite(test).all(dim=-1)
            if not bool(finite.all()):
                run.nonfinite += int((~finite).sum())
                test = torch.where(finite.unsqueeze(-1), test, torch.zeros_like(test))
            add_logits_per_position(run.logits, run.per_step[first : first + steps], base, test)
