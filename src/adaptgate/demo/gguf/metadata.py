"""A llama GGUF's hyperparameters and vocabulary, read from its metadata and validated.

Only what a plain Llama (no rope scaling, no experts, full rotary) stores is accepted; anything
else is refused with one line rather than converted into a model that silently differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptgate.errors import CheckpointFormatError

if TYPE_CHECKING:
    from gguf import GGUFReader

ARCHITECTURE = "llama"
TOKENIZER_MODEL = "gpt2"  # llama.cpp's name for byte-level BPE
# llama.cpp pre-tokenizer types this package rebuilds as a tokenizers pipeline
PRE_TOKENIZERS = ("smollm",)
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3  # llama.cpp's token types that byte-level BPE files use
DEFAULT_ROPE_THETA = 10000.0  # llama.cpp's default when rope.freq_base is absent
_REFUSED_PREFIXES = ("llama.rope.scaling.", "llama.expert_")


@dataclass(frozen=True)
class LlamaHParams:
    """The model's shape, as ``llama.*`` keys state it. Float keys are float32 in the file and
    are kept as the Python float of that float32 value."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    rope_theta: float
    rms_norm_eps: float
    vocab_size: int


@dataclass(frozen=True)
class GgufVocab:
    """The ``tokenizer.*`` keys: byte-level tokens and merges, types, special ids, template."""

    model: str
    pre: str
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None

    def token(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]

    def control_ids(self) -> list[int]:
        return [i for i, kind in enumerate(self.token_types) if kind == TOKEN_CONTROL]


def _bad(message: str) -> CheckpointFormatError:
    return CheckpointFormatError(message, fix="use a llama GGUF as llama.cpp's converter writes it")


def _value(reader: GGUFReader, key: str, kind: type, *, default: Any = ...) -> Any:
    field = reader.get_field(key)
    if field is None:
        if default is ...:
            raise _bad(f"GGUF metadata has no {key!r}")
        return default
    value = field.contents()
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise _bad(f"GGUF metadata {key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _list(reader: GGUFReader, key: str, kind: type) -> tuple[Any, ...]:
    values = _value(reader, key, list)
    if not all(isinstance(v, kind) for v in values):
        raise _bad(f"GGUF metadata {key!r} is not a list of {kind.__name__}")
    return tuple(values)


def _positive(reader: GGUFReader, key: str) -> int:
    value = _value(reader, key, int)
    if value <= 0:
        raise _bad(f"GGUF metadata {key!r} must be positive, got {value}")
    return int(value)


def read_hparams(reader: GGUFReader, vocab: GgufVocab) -> LlamaHParams:
    arch = _value(reader, "general.architecture", str)
    if arch != ARCHITECTURE:
        raise _bad(f"GGUF architecture {arch!r} is not supported (only {ARCHITECTURE!r})")
    refused = [k for k in reader.fields if k.startswith(_REFUSED_PREFIXES)]
    if refused:
        raise _bad(f"GGUF metadata {refused[0]!r} is not supported (rope scaling or experts)")
    p = "llama."
    hidden = _positive(reader, p + "embedding_length")
    heads = _positive(reader, p + "attention.head_count")
    kv_heads = _value(reader, p + "attention.head_count_kv", int, default=heads)
    if hidden % heads or kv_heads <= 0 or heads % kv_heads:
        raise _bad(f"GGUF heads do not divide: hidden {hidden}, heads {heads}, kv heads {kv_heads}")
    head_dim = hidden // heads
    for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
        value = _value(reader, p + key, int, default=head_dim)
        if value != head_dim:
            raise _bad(f"GGUF {p + key} is {value}, not the head size {head_dim} (unsupported)")
    vocab_size = _value(reader, p + "vocab_size", int, default=len(vocab.tokens))
    if vocab_size != len(vocab.tokens):
        raise _bad(f"GGUF vocab_size {vocab_size} != {len(vocab.tokens)} tokens")
    eps = _value(reader, p + "attention.layer_norm_rms_epsilon", float)
    return LlamaHParams(
        name=str(_value(reader, "general.name", str, default="")),
        layers=_positive(reader, p + "block_count"),
        hidden=hidden,
        intermediate=_positive(reader, p + "feed_forward_length"),
        heads=heads,
        kv_heads=int(kv_heads),
        head_dim=head_dim,
        context_length=_positive(reader, p + "context_length"),
        rope_theta=float(_value(reader, p + "rope.freq_base", float, default=DEFAULT_ROPE_THETA)),
        rms_norm_eps=float(eps),
        vocab_size=int(vocab_size),
    )


def _special_id(reader: GGUFReader, key: str, size: int) -> int | None:
    value = _value(reader, f"tokenizer.ggml.{key}", int, default=None)
    if value is not None and not 0 <= value < size:
        raise _bad(f"GGUF tokenizer.ggml.{key} {value} is outside the vocabulary of {size}")
    return None if value is None else int(value)


def read_vocab(reader: GGUFReader) -> GgufVocab:
    model = _value(reader, "tokenizer.ggml.model", str)
    if model != TOKENIZER_MODEL:
        raise _bad(f"GGUF tokenizer model {model!r} is not supported (only {TOKENIZER_MODEL!r})")
    pre = _value(reader, "tokenizer.ggml.pre", str)
    if pre not in PRE_TOKENIZERS:
        supported = ", ".join(PRE_TOKENIZERS)
        raise _bad(f"GGUF pre-tokenizer {pre!r} is not supported (only {supported})")
    tokens = _list(reader, "tokenizer.ggml.tokens", str)
    types = _list(reader, "tokenizer.ggml.token_type", int)
    merges = _list(reader, "tokenizer.ggml.merges", str)
    if len(types) != len(tokens):
        raise _bad(f"GGUF has {len(types)} token types for {len(tokens)} tokens")
    if len(set(tokens)) != len(tokens):
        raise _bad("GGUF vocabulary holds a token twice")
    unknown = sorted(set(types) - {TOKEN_NORMAL, TOKEN_CONTROL})
    if unknown:
        raise _bad(f"GGUF token type {unknown[0]} is not supported (only normal and control)")
    if any(m.count(" ") != 1 for m in merges):
        raise _bad("GGUF merge that is not two tokens separated by one space")
    size = len(tokens)
    template = _value(reader, "tokenizer.chat_template", str, default=None)
    return GgufVocab(
        model=model,
        pre=pre,
        tokens=tokens,
        token_types=types,
        merges=merges,
        bos_id=_special_id(reader, "bos_token_id", size),
        eos_id=_special_id(reader, "eos_token_id", size),
        unk_id=_special_id(reader, "unknown_token_id", size),
        pad_id=_special_id(reader, "padding_token_id", size),
        add_bos=bool(_value(reader, "tokenizer.ggml.add_bos_token", bool, default=False)),
        chat_template=template,
    )
