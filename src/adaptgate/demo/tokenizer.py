"""The demo tokenizer: a byte-level BPE trained locally, saved the way Qwen3 ships its tokenizer.

The pipeline is Qwen2/Qwen3's (NFC normalizer, the Qwen pre-tokenizer regex that splits digits
one by one, byte-level encoding and decoding, no unknown token) and the special tokens keep
Qwen3's names and their order at the end of the vocabulary. The trained ``tokenizer.json`` is
committed next to this module (training runs in Rust with hash-ordered maps, so the bytes of a
fresh training run are not guaranteed identical across processes); :func:`train_tokenizer`
regenerates it from ``corpus.txt``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

# Qwen2/Qwen3's pre-tokenizer regex (tokenizer.json of Qwen/Qwen3-8B).
PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# (content, special). As in Qwen3, the control tokens are "special" (dropped by
# skip_special_tokens) while the tag tokens are added tokens that stay in decoded text.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    (ENDOFTEXT, True),
    (IM_START, True),
    (IM_END, True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
BPE_VOCAB_SIZE = 2900  # learned tokens incl. the 256 byte symbols; specials come after
# Reserved special tokens fill the vocabulary up to a multiple of 128, so config.vocab_size
# equals the tokenizer's size and every id a model can emit decodes (to nothing).
VOCAB_MULTIPLE = 128
RESERVED = "<|reserved_special_token_{}|>"
TOKENIZER_CLASS = "Qwen2Tokenizer"
MODEL_MAX_LENGTH = 131072


def corpus_lines() -> list[str]:
    text = resources.files("adaptgate.demo").joinpath("corpus.txt").read_text(encoding="utf-8")
    return text.splitlines()


def train_tokenizer(vocab_size: int = BPE_VOCAB_SIZE) -> str:
    """Trains the BPE on the embedded corpus and returns the tokenizer.json text."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    from tokenizers import AddedToken

    for content, special in ADDED_TOKENS:
        added = AddedToken(content, special=special, normalized=False)
        if special:
            tok.add_special_tokens([added])
        else:
            tok.add_tokens([added])
    reserved = -tok.get_vocab_size() % VOCAB_MULTIPLE
    tok.add_special_tokens(
        [AddedToken(RESERVED.format(i), special=True, normalized=False) for i in range(reserved)]
    )
    return tok.to_str(pretty=True)


@lru_cache(maxsize=1)
def tokenizer_json() -> str:
    """The committed, deterministic tokenizer.json text."""
    return resources.files("adaptgate.demo").joinpath("tokenizer.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def token_ids() -> dict[str, int]:
    """Ids of the added tokens plus ``vocab_size`` (the tokenizer's full size)."""
    data = json.loads(tokenizer_json())
    ids = {t["content"]: int(t["id"]) for t in data["added_tokens"]}
    ids["vocab_size"] = max(*data["model"]["vocab"].values(), *ids.values()) + 1
    return ids


def chat_template() -> str:
    return (
        resources.files("adaptgate.demo")
        .joinpath("chat_template.jinja")
        .read_text(encoding="utf-8")
    )


def tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json as Qwen3 ships it (added_tokens_decoder, chat_template, ids)."""
    data = json.loads(tokenizer_json())
    decoder = {
        str(t["id"]): {
            "content": t["content"],
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": t["special"],
        }
        for t in data["added_tokens"]
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [IM_START, IM_END],
        "bos_token": None,
        "chat_template": chat_template(),
        "clean_up_tokenization_spaces": False,
        "eos_token": IM_END,
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": ENDOFTEXT,
        "split_special_tokens": False,
        "tokenizer_class": TOKENIZER_CLASS,
        "unk_token": None,
    }


def tokenizer_files() -> dict[str, str]:
    """tokenizer.json and tokenizer_config.json: file name -> text."""
    config = json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n"
    return {"tokenizer.json": tokenizer_json(), "tokenizer_config.json": config}


def write_tokenizer(out_dir: Path) -> None:
    """Writes tokenizer.json and tokenizer_config.json into ``out_dir``."""
    for name, text in tokenizer_files().items():
        (out_dir / name).write_text(text, encoding="utf-8")
