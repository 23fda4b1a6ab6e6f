"""Fingerprints that decide whether two dumps can be compared.

The tokenizer hash covers what tokenization depends on -- the vocabulary, the added tokens and
their flags, the normalizer / pre-tokenizer / model / decoder definition and the chat template --
serialized canonically, so re-saving the same tokenizer (key order, whitespace) keeps the hash
while any change of behaviour changes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    parts: dict[str, Any] = {
        "vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
        "added": sorted(
            (int(i), t.content, bool(t.special)) for i, t in tokenizer.added_tokens_decoder.items()
        ),
        "chat_template": getattr(tokenizer, "chat_template", None),
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("added_tokens", None)  # covered above; its order is not meaningful
        spec.pop("truncation", None)
        spec.pop("padding", None)
        parts["pipeline"] = spec
    return hashlib.sha256(_canonical(parts).encode("utf-8")).hexdigest()
