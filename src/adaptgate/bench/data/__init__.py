"""Workloads: what each request asks for. Datasets register by kind.

A dataset builds a list of :class:`PromptItem` before the run (bodies are serialized ahead, so the
hot path does no JSON work). ``prompt_set_hash`` identifies the exact prompts for the record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adaptgate.registry import Registry


@dataclass
class PromptItem:
    prompt: str | list[int] = ""
    max_tokens: int = 128
    prompt_tokens: int | None = None  # expected input length in the served model's tokens
    turns: list[str] = field(default_factory=list)  # multiturn: user messages, in order


DatasetBuilder = Callable[..., Awaitable[list[PromptItem]]]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")


def prompt_set_hash(items: list[PromptItem]) -> str:
    """sha256 over the prompts and their output lengths, in order."""
    h = hashlib.sha256()
    for item in items:
        row = [item.prompt, item.max_tokens, item.turns]
        h.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def dataset(kind: str) -> DatasetBuilder:
    """The builder registered as ``kind`` (the built-in modules register on first use)."""
    from adaptgate.bench.data import files, synthetic  # noqa: F401 - they register themselves

    return DATASETS.get(kind)
