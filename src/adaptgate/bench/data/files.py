"""Prompts from files: ShareGPT-style JSON and custom JSONL.

ShareGPT: a JSON list of ``{"conversations": [{"from": "human"|"gpt", "value": ...}, ...]}``;
the first human turn is the prompt and (with --output-len unset) the reply's length, in the
tokenizer's tokens, is the output length. JSONL: one object per line with ``prompt`` (text) and
optionally ``output_tokens`` / ``max_tokens``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from adaptgate.bench.data import DATASETS, PromptItem
from adaptgate.bench.data.tokenizers import Tokenizer
from adaptgate.bench.models import DatasetConfig
from adaptgate.errors import UsageError


def _need_path(cfg: DatasetConfig) -> Path:
    if cfg.path is None or not cfg.path.is_file():
        raise UsageError(
            f"dataset {cfg.kind!r} needs an existing file (got {cfg.path})",
            fix="pass --dataset-path FILE",
        )
    return cfg.path


def _load_sharegpt(path: Path) -> list[list[dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}", fix="pass a ShareGPT-style JSON") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of conversations")
    return [c["conversations"] for c in data if isinstance(c, dict) and c.get("conversations")]


def sharegpt_conversations(path: Path, n: int, turns: int, seed: int) -> list[list[str]]:
    convs = [
        [str(m["value"]) for m in conv if m.get("from") in ("human", "user")][:turns]
        for conv in _load_sharegpt(path)
    ]
    convs = [c for c in convs if c]
    if not convs:
        raise UsageError(f"{path} holds no conversation with a human turn")
    random.Random(seed).shuffle(convs)
    return [convs[i % len(convs)] for i in range(n)]


@DATASETS.register("sharegpt")
async def sharegpt(cfg: DatasetConfig, n: int, tok: Tokenizer) -> list[PromptItem]:
    path = _need_path(cfg)
    pairs = []
    for conv in _load_sharegpt(path):
        if len(conv) >= 2 and conv[0].get("from") in ("human", "user"):
            pairs.append((str(conv[0]["value"]), str(conv[1].get("value", ""))))
    if not pairs:
        raise UsageError(f"{path} holds no human/gpt pair")
    random.Random(cfg.seed).shuffle(pairs)
    items = []
    for i in range(n):
        prompt, reply = pairs[i % len(pairs)]
        out = len(await tok.encode(reply)) if cfg.ignore_eos is False else cfg.output_len
        items.append(PromptItem(prompt, max(1, out), len(await tok.encode(prompt))))
    return items


@DATASETS.register("jsonl")
async def jsonl(cfg: DatasetConfig, n: int, tok: Tokenizer) -> list[PromptItem]:
    path = _need_path(cfg)
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{lineno} is not JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UsageError(f"{path}:{lineno} has no string 'prompt'")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path} holds no prompt")
    items = []
    for i in range(n):
        row = rows[i % len(rows)]
        out = int(row.get("output_tokens") or row.get("max_tokens") or cfg.output_len)
        items.append(PromptItem(row["prompt"], out, len(await tok.encode(row["prompt"]))))
    return items
