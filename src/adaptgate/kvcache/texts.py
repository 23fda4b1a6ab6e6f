"""The forced texts of the teacher-forced mode: a prompt and the continuation fed after it.

Built in (``forced_texts.yaml`` beside this module): long prose, code and Chinese, each with a
short prompt. From a prompt file (``--prompts``): each prompt's text is split, its last
``tokens`` tokens being the forced continuation (at least one token stays the prompt).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict

from adaptgate.errors import UsageError
from adaptgate.kvcache.forced import ForcedText

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from adaptgate.reference.prompts import EncodedPrompt

BUILTIN_FILE = "forced_texts.yaml"


class BuiltinText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    category: str
    prompt: str
    continuation: str


def builtin_texts() -> list[BuiltinText]:
    text = resources.files("adaptgate.kvcache").joinpath(BUILTIN_FILE).read_text("utf-8")
    return [BuiltinText.model_validate(item) for item in yaml.safe_load(text)["texts"]]


def encode_builtin(
    texts: list[BuiltinText], tokenizer: PreTrainedTokenizerBase, tokens: int
) -> list[ForcedText]:
    """The prompt as a completion prompt (the tokenizer's special tokens added once), the
    continuation's tokens after it, cut to ``tokens``."""
    out = []
    for t in texts:
        prompt = [int(i) for i in tokenizer(t.prompt)["input_ids"]]
        cont = tokenizer(t.continuation, add_special_tokens=False)["input_ids"]
        out.append(ForcedText(prompt, [int(i) for i in cont[:tokens]]))
    return out


def split_prompts(prompts: list[EncodedPrompt], tokens: int) -> list[ForcedText]:
    """Each prompt's last ``tokens`` tokens forced (at least its first token stays the prompt)."""
    out = []
    for p in prompts:
        ids = p.token_ids
        if len(ids) < 2:
            raise UsageError(
                f"prompt {p.prompt.id!r} has {len(ids)} token: nothing to force after it",
                fix="give each prompt at least two tokens of text (the end is the forced part)",
            )
        cut = max(1, len(ids) - tokens)
        out.append(ForcedText(ids[:cut], ids[cut:]))
    return out
