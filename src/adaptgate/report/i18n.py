"""The label catalogue: every word the report writes, per language, as data (labels/*.yaml).

A gate reason recorded as a message (adaptgate.messages) is rendered in the report's language;
other reasons, warnings and check evidence are quoted in the English the gates wrote (issue 19
moves them into the message catalogue): no machine translation.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from adaptgate.errors import UsageError

LANGS = ("en", "zh")


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise UsageError(f"unknown report language {lang!r}", fix=f"use one of: {', '.join(LANGS)}")
    text = resources.files("adaptgate.report").joinpath(f"labels/{lang}.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return {str(k): str(v) for k, v in data.items()}


class Labels:
    """``t("section.inspect")`` -> the label in this language; ``t.opt(key, fallback)`` for the
    labels that exist only for known names (gates, metrics)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._labels = catalogue(lang)

    def __call__(self, key: str, **fields: Any) -> str:
        text = self._labels[key]
        return text.format(**fields) if fields else text

    def opt(self, key: str, fallback: str) -> str:
        return self._labels.get(key, fallback)

    def status(self, status: str) -> str:
        return self.opt(f"status.{status}", status)
