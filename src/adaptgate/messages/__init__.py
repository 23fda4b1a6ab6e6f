"""The message catalogue: every sentence a gate records for a person (a verdict's reason), as an
id with named parameters and an English and a Chinese template (``en.yaml``, ``zh.yaml``).

A gate builds its reason with :func:`message`; the English text it logs and stores in
``reason`` is rendered from the same template the report renders in its language, so the two
cannot drift. Parameters are names, numbers and code, never sentences: what reads as prose is in
the templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from adaptgate.errors import UsageError

LANGS = ("en", "zh")


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGS:
        raise UsageError(
            f"unknown message language {lang!r}", fix=f"use one of: {', '.join(LANGS)}"
        )
    text = resources.files("adaptgate.messages").joinpath(f"{lang}.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return {str(k): str(v) for k, v in data.items()}


def render(message_id: str, params: dict[str, Any], lang: str) -> str:
    """The template in ``lang`` filled in; a parameter that is itself a message (a dict with
    ``id`` and ``params``: an earlier gate's reason quoted) is rendered in ``lang`` too."""
    filled = {
        k: render(v["id"], v["params"], lang) if isinstance(v, dict) and "id" in v else v
        for k, v in params.items()
    }
    return catalogue(lang)[message_id].format(**filled)


@dataclass(frozen=True)
class Message:
    """A sentence as data: ``id`` and ``params``, and ``text``, its English rendering."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return render(self.id, self.params, "en")


def message(message_id: str, **params: Any) -> Message:
    """``message("smoke.verdict", protocol="PASS", ...)``; a parameter may be a Message (kept
    as ``{"id", "params"}``). An unknown id or a missing parameter
    fails here, when the gate builds it, not when a report renders it."""
    nested = {
        k: {"id": v.id, "params": v.params} if isinstance(v, Message) else v
        for k, v in params.items()
    }
    msg = Message(message_id, nested)
    msg.text  # noqa: B018 - renders once so a bad id or parameter surfaces at the gate
    return msg
