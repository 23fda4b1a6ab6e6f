"""tokenizer.json and tokenizer_config.json from a GGUF's byte-level BPE vocabulary.

The pipeline is the one of SmolLM2's own tokenizer.json, which is what llama.cpp's ``smollm``
pre-tokenizer type implements (``\\p{N}`` split one by one, then the GPT-2 regex): no normalizer,
``Digits(individual_digits=True)`` then ``ByteLevel(add_prefix_space=False, use_regex=True)``,
a BPE without unknown token, ``ByteLevel`` post-processor and decoder. Control tokens (llama.cpp
token type 3) become special added tokens at their ids.

transformers 5's GGUF tokenizer (``AutoTokenizer.from_pretrained(dir, gguf_file=...)``) has no
entry for the ``smollm`` pre-tokenizer and keeps GPT-2's plain ByteLevel, so it can split
differently where a numeric character follows two or more whitespace characters (``"a  1"``:
``a Ġ Ġ 1`` there, ``a ĠĠ 1`` here and in llama.cpp) or follows a space and is not an ASCII digit
(``" ½"``). transformers 5 also rebuilds a ``GPT2Tokenizer`` (the class SmolLM2's
tokenizer_config.json names) with that plain ByteLevel, ignoring tokenizer.json's pre-tokenizer;
tokenizers' ``Tokenizer.from_file`` and the ``TokenizersBackend`` class keep it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptgate.demo.gguf.metadata import GgufVocab

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_CLASS = "GPT2Tokenizer"  # as SmolLM2's tokenizer_config.json names it


def build_tokenizer(vocab: GgufVocab) -> Tokenizer:
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    bpe = BPE(
        vocab={token: i for i, token in enumerate(vocab.tokens)},
        merges=[(a, b) for a, _, b in (m.partition(" ") for m in vocab.merges)],
        dropout=None,
        unk_token=None,
        fuse_unk=False,
        byte_fallback=False,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(vocab.tokens[i], special=True, normalized=False) for i in vocab.control_ids()]
    )
    return tok


def tokenizer_json(vocab: GgufVocab) -> str:
    return build_tokenizer(vocab).to_str(pretty=True)


def tokenizer_config(vocab: GgufVocab, *, model_max_length: int) -> dict[str, Any]:
    """tokenizer_config.json with SmolLM2's keys; special tokens named by the GGUF's ids."""
    decoder = {
        str(i): {
            "content": vocab.tokens[i],
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i in vocab.control_ids()
    }
    chat_roles = [t for t in (vocab.token(vocab.bos_id), vocab.token(vocab.eos_id)) if t]
    return {
        "add_bos_token": vocab.add_bos,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": chat_roles,
        "bos_token": vocab.token(vocab.bos_id),
        "chat_template": vocab.chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": vocab.token(vocab.eos_id),
        "model_max_length": model_max_length,
        "pad_token": vocab.token(vocab.pad_id),
        "tokenizer_class": TOKENIZER_CLASS,
        "unk_token": vocab.token(vocab.unk_id),
        "vocab_size": len(vocab.tokens),
    }
