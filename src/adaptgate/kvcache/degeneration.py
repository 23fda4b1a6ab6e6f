"""Degeneration into repetition, measured on token ids (the symptom of seed report 003).

- ``repetition_rate(tokens, n)``: the share of repeated n-grams, ``1 - distinct / total`` over
  the generated tokens (0 for text that never repeats an n-gram, ->1 for a loop);
- ``tail_loop(tokens)``: the shortest period ``p`` such that the last ``window`` tokens repeat
  with period ``p`` (None if they do not) -- generation stuck in a cycle.

A format degenerates a prompt when its repetition rate exceeds the baseline's by more than the
threshold, or it ends in a loop the baseline does not end in.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

NGRAM = 4
LOOP_WINDOW = 64
MAX_PERIOD = 16


def repetition_rate(tokens: list[int], n: int = NGRAM) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def tail_loop(
    tokens: list[int], window: int = LOOP_WINDOW, max_period: int = MAX_PERIOD
) -> int | None:
    if len(tokens) < window:
        return None
    tail = tokens[-window:]
    for p in range(1, max_period + 1):
        if all(tail[i] == tail[i - p] for i in range(p, window)):
            return p
    return None


class Degeneration(BaseModel):
    """One prompt, one format, against the baseline's continuation of the same prompt."""

    repetition: float = Field(description=f"{NGRAM}-gram repetition rate of the generation")
    baseline_repetition: float
    loop_period: int | None = Field(description=f"period of a loop over the last {LOOP_WINDOW}")
    baseline_loop_period: int | None

    @property
    def increase(self) -> float:
        return self.repetition - self.baseline_repetition

    def degenerated(self, max_increase: float) -> bool:
        new_loop = self.loop_period is not None and self.baseline_loop_period is None
        return self.increase > max_increase or new_loop


def measure(tokens: list[int], baseline: list[int]) -> Degeneration:
    return Degeneration(
        repetition=repetition_rate(tokens),
        baseline_repetition=repetition_rate(baseline),
        loop_period=tail_loop(tokens),
        baseline_loop_period=tail_loop(baseline),
    )


def summarize(
    tokens: list[list[int]], baselines: list[list[int]], max_increase: float
) -> tuple[list[Degeneration], float, float]:
    """Per prompt, the mean repetition increase, and the share of prompts degenerated."""
    found = [measure(t, b) for t, b in zip(tokens, baselines, strict=True)]
    count = max(1, len(found))
    increase = sum(d.increase for d in found) / count
    return found, increase, sum(d.degenerated(max_increase) for d in found) / count
