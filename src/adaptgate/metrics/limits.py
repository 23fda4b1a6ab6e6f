"""Limits as data and their evaluation: a measured value against a ``min``/``max`` with its
source, and the YAML loader every threshold file (precision's, kvcache's) goes through."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adaptgate.errors import CheckpointNotFound, UsageError
from adaptgate.messages import Said


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    min: float | None = None
    max: float | None = None
    source: str = ""
    source_zh: str | None = Field(default=None, description="the source in Chinese, for reports")


class Check(BaseModel):
    """One limit applied to one measured value."""

    subject: str = Field(description="logits, layer 3, generation, served, ...")
    metric: str
    value: float | None
    bound: Literal["min", "max"]
    threshold: float
    source: Said
    passed: bool


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(
    model: type[M],
    package: str,
    default_file: str,
    path: Path | None,
    what: str,
    *,
    label_field: str | None = None,
) -> tuple[M, str]:
    """A YAML data file -- ``path``, else ``default_file`` shipped in ``package`` -- validated
    into ``model``, with its label stored in ``label_field`` when given; one-line errors.
    Returns the model and the label."""
    if path is None:
        text = resources.files(package).joinpath(default_file).read_text("utf-8")
        label = f"built-in {default_file}"
    else:
        if not path.is_file():
            raise CheckpointNotFound(f"{what} {path} does not exist", fix="pass a YAML file")
        text, label = path.read_text(encoding="utf-8"), str(path)
    try:
        data = yaml.safe_load(text) or {}
        if label_field is not None:
            data = {**data, label_field: label}
        return model.model_validate(data), label
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        first = str(exc).replace("\n", " ")[:300]
        raise UsageError(
            f"{label} is not a valid {what}: {first}",
            fix=f"follow the shape of {package.replace('.', '/')}/{default_file}",
        ) from None


def evaluate(
    subject: str, limits: dict[str, Limit], values: dict[str, float | None]
) -> list[Check]:
    """Every enabled limit whose metric was measured; NaN and None fail."""
    checks = []
    for metric, limit in limits.items():
        if metric not in values:
            continue
        value = values[metric]
        for bound in ("min", "max"):
            threshold = getattr(limit, bound)
            if threshold is None:
                continue
            ok = value is not None and not math.isnan(value)
            if ok and value is not None:
                ok = value >= threshold if bound == "min" else value <= threshold
            checks.append(
                Check(
                    subject=subject,
                    metric=metric,
                    value=value,
                    bound=bound,
                    threshold=threshold,
                    source=Said(text=limit.source, zh=limit.source_zh),
                    passed=ok,
                )
            )
    return checks
