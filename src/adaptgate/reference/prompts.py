"""Prompt sets: the built-in set (data file beside this module) and user JSONL files.

A JSONL line is an object with ``text`` (or ``prompt``) and optionally ``id``, ``category`` and
``chat`` (true: render through the model's chat template with the generation prompt), or with
``messages`` (a chat conversation, implies ``chat``). Token ids are computed by the model's own
tokenizer and recorded in the dump, so two dumps are comparable only when the ids agree.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adaptgate.errors import CheckpointNotFound, UsageError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BUILTIN_FILE = "builtin_prompts.yaml"


class Prompt(BaseModel):
    """One prompt; ``messages`` set means a chat conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str = ""
    category: str = "custom"
    chat: bool = False
    messages: list[dict[str, str]] | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Prompt:
        if not self.text and not self.messages:
            raise ValueError("a prompt needs `text` (or `prompt`) or `messages`")
        return self

    def chat_messages(self) -> list[dict[str, str]]:
        return list(self.messages) if self.messages else [{"role": "user", "content": self.text}]

    @property
    def is_chat(self) -> bool:
        return self.chat or bool(self.messages)


class EncodedPrompt(BaseModel):
    """A prompt with the exact text fed to the tokenizer and its token ids."""

    prompt: Prompt
    rendered: str = Field(description="the text after the chat template (= text when not chat)")
    token_ids: list[int]


def builtin_prompts() -> list[Prompt]:
    text = resources.files("adaptgate.reference").joinpath(BUILTIN_FILE).read_text("utf-8")
    raw = yaml.safe_load(text)["prompts"]
    return [Prompt.model_validate(item) for item in raw]


def _from_line(obj: Any, number: int, path: Path) -> Prompt:
    where = f"{path}:{number}"
    if not isinstance(obj, dict):
        raise UsageError(
            f"{where}: expected a JSON object, got {type(obj).__name__}",
            fix='write one object per line, e.g. {"text": "Hello"}',
        )
    item = dict(obj)
    if "prompt" in item and "text" not in item:
        item["text"] = item.pop("prompt")
    item.setdefault("id", f"p{number}")
    item["id"] = str(item["id"])
    try:
        return Prompt.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "line"
        raise UsageError(
            f"{where}: {loc}: {first['msg']}",
            fix='each line needs "text" (or "prompt" / "messages"); optional "id", '
            '"category", "chat"',
        ) from None


def load_prompts(path: Path) -> list[Prompt]:
    """Reads a JSONL prompt file; ids must be unique; blank lines are skipped."""
    if not path.is_file():
        raise CheckpointNotFound(f"prompt file {path} does not exist", fix="pass a JSONL file")
    prompts: list[Prompt] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{path}:{number}: not JSON ({exc.msg}, column {exc.colno})",
                fix="write one JSON object per line",
            ) from None
        prompts.append(_from_line(obj, number, path))
    if not prompts:
        raise UsageError(f"{path} holds no prompts", fix="add one JSON object per line")
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise UsageError(f"{path}: prompt id {p.id!r} appears twice", fix="make ids unique")
        seen.add(p.id)
    return prompts


def encode_prompts(
    prompts: list[Prompt], tokenizer: PreTrainedTokenizerBase
) -> list[EncodedPrompt]:
    """Renders chat prompts through the tokenizer's chat template, then tokenizes every text
    without adding special tokens a second time (the template already holds them)."""
    out = []
    for p in prompts:
        if p.is_chat:
            if not getattr(tokenizer, "chat_template", None):
                raise UsageError(
                    f"prompt {p.id!r} is a chat prompt but the tokenizer has no chat template",
                    fix='set "chat": false or use a model that ships a chat template',
                )
            rendered = tokenizer.apply_chat_template(
                p.chat_messages(), tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        else:
            rendered = p.text
            ids = tokenizer(rendered)["input_ids"]
        if not ids:
            raise UsageError(f"prompt {p.id!r} encodes to no tokens", fix="give it some text")
        out.append(EncodedPrompt(prompt=p, rendered=str(rendered), token_ids=[int(i) for i in ids]))
    return out
