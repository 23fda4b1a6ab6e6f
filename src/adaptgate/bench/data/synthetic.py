"""Random prompts of exact token lengths, optionally behind shared prefixes; synthetic
multi-turn conversations built the same way."""

from __future__ import annotations

import asyncio
import random

from adaptgate.bench.data import DATASETS, PromptItem
from adaptgate.bench.data.tokenizers import Tokenizer, fit_length, token_pool
from adaptgate.bench.models import DatasetConfig


def _lengths(rng: random.Random, nominal: int, ratio: float, n: int) -> list[int]:
    """Uniform in [nominal*(1-ratio), nominal*(1+ratio)], as vllm bench serve's range ratio."""
    lo, hi = max(1, int(nominal * (1 - ratio))), max(1, int(nominal * (1 + ratio)))
    return [rng.randint(lo, hi) for _ in range(n)]


async def _texts(tok: Tokenizer, lengths: list[int], rng: random.Random) -> list[str]:
    pool = await token_pool(tok)
    # one rng per prompt, seeded in order, so concurrency does not change the prompts
    rngs = [random.Random(rng.getrandbits(64)) for _ in lengths]
    sem = asyncio.Semaphore(16)

    async def one(n: int, r: random.Random) -> str:
        async with sem:
            return await fit_length(tok, pool, n, r)

    return list(await asyncio.gather(*(one(n, r) for n, r in zip(lengths, rngs, strict=True))))


@DATASETS.register("random")
async def random_prompts(cfg: DatasetConfig, n: int, tok: Tokenizer) -> list[PromptItem]:
    rng = random.Random(cfg.seed)
    in_lens = _lengths(rng, cfg.input_len, cfg.range_ratio, n)
    out_lens = _lengths(rng, cfg.output_len, cfg.range_ratio, n)
    prefixes: list[str] = []
    if cfg.prefix_len:
        prefixes = await _texts(tok, [cfg.prefix_len] * cfg.num_prefixes, rng)
    bodies = await _texts(tok, in_lens, rng)
    items = []
    for i, (text, n_in, n_out) in enumerate(zip(bodies, in_lens, out_lens, strict=True)):
        prompt = f"{prefixes[i % len(prefixes)]} {text}" if prefixes else text
        items.append(PromptItem(prompt, n_out, n_in + cfg.prefix_len if prefixes else n_in))
    return items


@DATASETS.register("multiturn")
async def multiturn(cfg: DatasetConfig, n: int, tok: Tokenizer) -> list[PromptItem]:
    """``n`` conversations of ``turns`` user messages each (from a ShareGPT file if a path is
    given); each next turn is sent after the previous answer, with the history."""
    if cfg.path is not None:
        from adaptgate.bench.data.files import sharegpt_conversations

        convs = sharegpt_conversations(cfg.path, n, cfg.turns, cfg.seed)
        return [PromptItem("", cfg.output_len, None, turns) for turns in convs]
    rng = random.Random(cfg.seed)
    texts = await _texts(tok, [cfg.input_len] * (n * cfg.turns), rng)
    return [
        PromptItem("", cfg.output_len, cfg.input_len, texts[i * cfg.turns : (i + 1) * cfg.turns])
        for i in range(n)
    ]
