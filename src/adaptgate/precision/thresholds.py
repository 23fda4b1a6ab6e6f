"""Thresholds as data: the YAML beside this module (or a user's file of the same shape); and
the sentence a failed limit is reported in."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adaptgate.errors import UnknownKind
from adaptgate.messages import Message, Said, message, said
from adaptgate.metrics.limits import Check, Limit, load_yaml_model
from adaptgate.metrics.logits import GenerationMetrics, LogitMetrics, TensorMetrics

DEFAULT_FILE = "thresholds.yaml"
SECTIONS = ("logits", "hidden", "jump", "generation", "served")
SERVED_METRICS = (
    "exact_match_rate",
    "first_mismatch_in_topk",
    "logprob_abs_diff_mean",
    "logprob_abs_diff_max",
    "topk_kl_mean",
    "prompt_logprob_abs_diff_mean",
)
_KNOWN: dict[str, set[str]] = {
    "logits": set(TensorMetrics.model_fields) | set(LogitMetrics.model_fields),
    "hidden": set(TensorMetrics.model_fields),
    "jump": {f"{m}_jump" for m in ("rel_l2", "rel_l1", "mean_abs_err", "max_abs_err")},
    "generation": set(GenerationMetrics.model_fields),
    "served": set(SERVED_METRICS),
}


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    logits: dict[str, Limit] = Field(default_factory=dict)
    hidden: dict[str, Limit] = Field(default_factory=dict)
    jump: dict[str, Limit] = Field(default_factory=dict)
    generation: dict[str, Limit] = Field(default_factory=dict)
    served: dict[str, Limit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_metrics(self) -> Profile:
        for section in SECTIONS:
            unknown = set(getattr(self, section)) - _KNOWN[section]
            if unknown:
                raise ValueError(
                    f"{section}: unknown metric {sorted(unknown)[0]!r} "
                    f"(known: {', '.join(sorted(_KNOWN[section]))})"
                )
        return self


class ThresholdFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    default_profile: str
    profiles: dict[str, Profile]


class Thresholds(BaseModel):
    """The chosen profile and where it came from."""

    file: str
    profile: str
    limits: Profile


def load_thresholds(path: Path | None = None, profile: str | None = None) -> Thresholds:
    parsed, label = load_yaml_model(
        ThresholdFile, "adaptgate.precision", DEFAULT_FILE, path, "threshold file"
    )
    name = profile or parsed.default_profile
    if name not in parsed.profiles:
        raise UnknownKind(
            f"unknown threshold profile {name!r} in {label}",
            fix=f"use one of: {', '.join(parsed.profiles)}",
        )
    return Thresholds(file=label, profile=name, limits=parsed.profiles[name])


def limit_failed(check: Check) -> Message:
    """A failed limit as a sentence, its source quoted as the threshold file writes it."""
    return message(
        "precision.limit_failed",
        subject=check.subject,
        metric=check.metric,
        value="n/a" if check.value is None else f"{check.value:.6g}",
        op=">=" if check.bound == "min" else "<=",
        threshold=f"{check.threshold:g}",
        source=check.source,
    )


def failed_reason(failed: list[Check]) -> Said:
    """A FAIL verdict's reason: its first two failed limits (``failed`` is not empty)."""
    first, *rest = [limit_failed(c).said for c in failed[:2]]
    return said("precision.both", first=first, second=rest[0]) if rest else first
