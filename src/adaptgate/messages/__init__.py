"""The message catalogue: every sentence a gate records for a person (a verdict's reason), as an
id with named parameters and an English and a Chinese template, kept together in
``catalogue/<area>.yaml`` (``smoke.verdict: {en: ..., zh: ...}``; the id's first part names the
file, so each gate's sentences live in one small file).

A gate builds its reason with :func:`message`; the English text it logs and stores in
``reason`` is rendered from the same template the report renders in its language, so the two
cannot drift. Parameters are names, numbers and code, never sentences: what reads as prose is in
the templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, Field, model_validator

from adaptgate.errors import UsageError

LANGS = ("en", "zh")


@cache
def _entries() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in resources.files("adaptgate.messages").joinpath("catalogue").iterdir():
        if not path.name.endswith(".yaml"):
            continue
        data: dict[str, Any] = yaml.safe_load(path.read_text("utf-8")) or {}
        for key, langs in data.items():
            out[str(key)] = {str(lang): str(text) for lang, text in langs.items()}
    return out


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every message id -> its template in ``lang`` (an id lacking ``lang`` is left out, and the
    catalogue test fails on it)."""
    if lang not in LANGS:
        raise UsageError(
            f"unknown message language {lang!r}", fix=f"use one of: {', '.join(LANGS)}"
        )
    return {key: langs[lang] for key, langs in _entries().items() if lang in langs}


def render(message_id: str, params: dict[str, Any], lang: str) -> str:
    """The template in ``lang`` filled in; a parameter that is itself a sentence (a dict: an
    earlier gate's message as ``id``/``params``, or a data sentence as ``text``/``zh``) is
    rendered in ``lang`` too."""
    filled = {k: _nested(v, lang) if isinstance(v, dict) else v for k, v in params.items()}
    return catalogue(lang)[message_id].format(**filled)


def _nested(value: dict[str, Any], lang: str) -> Any:
    if "id" in value and value["id"] is not None:
        return render(value["id"], value.get("params", {}), lang)
    if "text" in value:
        return value["zh"] if lang == "zh" and value.get("zh") else value["text"]
    return value


@dataclass(frozen=True)
class Message:
    """A sentence as data: ``id`` and ``params``, and ``text``, its English rendering."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return render(self.id, self.params, "en")

    @property
    def said(self) -> Said:
        return Said(text=self.text, id=self.id, params=self.params)


def message(message_id: str, **params: Any) -> Message:
    """``message("smoke.verdict", protocol="PASS", ...)``; a parameter may be a Message or a
    Said (kept as a dict, rendered in the reader's language). An unknown id or a missing parameter
    fails here, when the gate builds it, not when a report renders it."""
    nested = {
        k: {"id": v.id, "params": v.params}
        if isinstance(v, Message)
        else v.model_dump(exclude_defaults=True)
        if isinstance(v, Said)
        else v
        for k, v in params.items()
    }
    msg = Message(message_id, nested)
    msg.text  # noqa: B018 - renders once so a bad id or parameter surfaces at the gate
    return msg


class Said(BaseModel):
    """A sentence inside a result model (a check's reason, a finding, a flag's reason): its
    English ``text`` for logs and run.json readers, and what renders it in another language --
    a catalogue message (``id``, ``params``), or, for sentences that are themselves data (a
    knowledge row's reason, kept beside its release and source), the row's ``zh`` text.
    A plain string (run.json of an earlier version) reads as English text with nothing else."""

    text: str
    id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    zh: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    def __str__(self) -> str:
        return self.text

    @property
    def said(self) -> Said:
        """Itself: a Said and a Message both give ``.said``."""
        return self

    def in_lang(self, lang: str) -> str:
        if self.id is not None:
            return render(self.id, self.params, lang)
        if lang == "zh" and self.zh is not None:
            return self.zh
        return self.text


def said(message_id: str, **params: Any) -> Said:
    """``message(...)`` as a :class:`Said`, for a result model's field."""
    return message(message_id, **params).said


def joined(sentences: Sequence[Message | Said], link: str = "text.and") -> Said:
    """Sentences as one line: ``link`` is a message of ``{first}`` and ``{second}`` (the
    separator in each language; ``text.and`` is "first; second"), so each part still renders
    in the reader's language. One sentence is itself; there must be one."""
    line = sentences[0].said
    for nxt in sentences[1:]:
        line = said(link, first=line, second=nxt)
    return line
