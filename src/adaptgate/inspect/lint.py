"""Checkpoint consistency lint: faults that change nothing on one engine and bite on another,
found statically, each as a finding with its fix.

- special tokens: the generation's stop ids (generation_config.json, else config.json), the
  tokenizer's eos_token and the chat template's end-of-turn marker must agree;
- ``tie_word_embeddings: false`` with no ``lm_head`` weight (vLLM loads it and serves garbage);
- ``max_position_embeddings`` beyond what the rope scaling reaches;
- rope parameters that disagree with the official checkpoints of the architecture family
  (``rope_facts.yaml``: data with the source of each value). A warning, not an error: a
  fine-tune or a long-context variant may change rope_theta or add rope scaling on purpose, and
  the lint cannot know the intent -- it names the field, both values and the source;
- a converted checkpoint's side files (config fields other than quantization and dtype,
  tokenizer, chat template, generation config) against its source's (:func:`compare_side_files`),
  the rope fields compared by value and named one by one: a conversion never changes rope.

Errors make inspect FAIL; warnings are reported beside its verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# markers chat templates end a turn with, and that the generation must stop on
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|user|>", "</s>")
# config.json fields a conversion legitimately rewrites
CONVERTED_KEYS = frozenset({"quantization_config", "torch_dtype", "dtype", "transformers_version"})
# config.json fields that carry the rope: compared by value (rope_view), not as raw keys
ROPE_KEYS = frozenset(
    {"rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor", "head_dim"}
)
ROPE_FACTS = "rope_facts.yaml"
SIDE_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
)


class Finding(BaseModel):
    id: str
    severity: Literal["error", "warning"]
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.message} -- fix: {self.fix}"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ids(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


class Vocab:
    """Token text <-> id from tokenizer.json (added tokens first, then the model's vocab)."""

    def __init__(self, root: Path) -> None:
        data = _json(root / "tokenizer.json")
        vocab = (data.get("model") or {}).get("vocab")
        self.by_text: dict[str, int] = dict(vocab) if isinstance(vocab, dict) else {}
        for tok in data.get("added_tokens") or []:
            if isinstance(tok, dict) and isinstance(tok.get("id"), int):
                self.by_text[str(tok.get("content"))] = tok["id"]
        self.by_id = {v: k for k, v in self.by_text.items()}

    def name(self, token_id: int) -> str:
        return f"{self.by_id.get(token_id, '?')} (id {token_id})"


def chat_template(root: Path, tok_config: dict[str, Any]) -> str:
    """The template text: tokenizer_config.json's, else chat_template.jinja / .json."""
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if isinstance(template, str):
        return template
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    return str(_json(root / "chat_template.json").get("chat_template") or "")


def _special_tokens(root: Path, config: dict[str, Any]) -> list[Finding]:
    gen = _json(root / "generation_config.json")
    tok_config = _json(root / "tokenizer_config.json")
    vocab = Vocab(root)
    config_eos, gen_eos = _ids(config.get("eos_token_id")), _ids(gen.get("eos_token_id"))
    stops = gen_eos or config_eos
    source = "generation_config.json" if gen_eos else "config.json"
    findings: list[Finding] = []
    size = config.get("vocab_size")
    outside = [i for i in stops if isinstance(size, int) and not 0 <= i < size]
    if outside:
        findings.append(
            Finding(
                id="eos_out_of_vocab",
                severity="error",
                message=f"{source} stops on token id(s) {outside}, outside the vocabulary "
                f"of {size}",
                fix=f"set eos_token_id in {source} to the tokenizer's end-of-turn token id",
            )
        )
    if not stops or not vocab.by_text:
        return findings
    template = chat_template(root, tok_config)
    markers = [m for m in END_OF_TURN if m in template and m in vocab.by_text]
    if markers and not any(vocab.by_text[m] in stops for m in markers):
        findings.append(
            Finding(
                id="eos_not_end_of_turn",
                severity="warning",
                message=f"the chat template ends turns with {markers[0]} (id "
                f"{vocab.by_text[markers[0]]}) but {source} stops on "
                f"{', '.join(vocab.name(i) for i in stops)}: an engine that stops on EOS alone "
                "runs past the end of the answer",
                fix=f"add {vocab.by_text[markers[0]]} to eos_token_id in generation_config.json",
            )
        )
    eos = tok_config.get("eos_token")
    eos_text = eos.get("content") if isinstance(eos, dict) else eos
    eos_id = vocab.by_text.get(eos_text) if isinstance(eos_text, str) else None
    if eos_id is not None and eos_id not in stops:
        findings.append(
            Finding(
                id="eos_tokenizer_mismatch",
                severity="warning",
                message=f"tokenizer_config.json's eos_token is {vocab.name(eos_id)} but "
                f"{source} stops on {', '.join(vocab.name(i) for i in stops)}",
                fix="make eos_token and eos_token_id name the same token",
            )
        )
    if gen_eos and config_eos and not set(config_eos) <= set(gen_eos):
        findings.append(
            Finding(
                id="eos_config_mismatch",
                severity="warning",
                message=f"config.json's eos_token_id {config_eos} is not among "
                f"generation_config.json's {gen_eos}",
                fix="make the two files name the same end-of-sequence token(s)",
            )
        )
    return findings


def _head(config: dict[str, Any], tensor_names: Iterable[str] | None) -> list[Finding]:
    if tensor_names is None or config.get("tie_word_embeddings") is not False:
        return []  # no tensors to look at (planning from config.json), or tied
    if any(n == "lm_head.weight" or n.endswith(".lm_head.weight") for n in tensor_names):
        return []
    return [
        Finding(
            id="untied_without_lm_head",
            severity="error",
            message="tie_word_embeddings is false but the checkpoint has no lm_head.weight: "
            "engines load the output layer uninitialized and serve garbage without a word",
            fix="set tie_word_embeddings to true (the embedding is the head), or add the "
            "lm_head weight",
        )
    ]


def _rope_reach(config: dict[str, Any]) -> list[Finding]:
    scaling = config.get("rope_scaling") or config.get("rope_parameters")
    if not isinstance(scaling, dict):
        return []
    if (scaling.get("rope_type") or scaling.get("type")) == "llama3":
        # llama3 scaling stretches only the low frequencies: its reach is not factor x original
        # (Llama-3.1-8B serves 131072 positions with factor 8 over 8192)
        return []
    factor, original = scaling.get("factor"), scaling.get("original_max_position_embeddings")
    longest = config.get("max_position_embeddings")
    if not all(isinstance(v, int | float) for v in (factor, original, longest)):
        return []
    reach = int(float(factor) * float(original))  # type: ignore[arg-type]
    if int(longest) <= reach:  # type: ignore[arg-type]
        return []
    return [
        Finding(
            id="context_beyond_rope",
            severity="warning",
            message=f"max_position_embeddings {longest} is beyond the rope scaling's reach "
            f"({scaling.get('rope_type') or scaling.get('type')} x{factor} of {original} = "
            f"{reach})",
            fix=f"serve with --max-model-len {reach} or less, or fix rope_scaling",
        )
    ]


class RopeFact(BaseModel):
    """An official checkpoint's rope, for the configs of ``model_type`` that ``match`` it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model_type: str
    match: dict[str, Any] = Field(default_factory=dict)
    rope: dict[str, Any]
    source: str
    checked: str


class RopeFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_rope_theta: float
    checkpoints: list[RopeFact]


@lru_cache(maxsize=1)
def rope_facts() -> RopeFacts:
    import yaml

    text = resources.files("adaptgate.inspect").joinpath(ROPE_FACTS).read_text("utf-8")
    return RopeFacts.model_validate(yaml.safe_load(text))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rope_view(config: dict[str, Any]) -> dict[str, Any]:
    """The rope a config describes, whichever way it is written: top-level ``rope_theta`` /
    ``partial_rotary_factor`` and ``rope_scaling`` (transformers 4) or ``rope_parameters``
    (transformers 5); ``rope_type`` "default" when there is no scaling; ``head_dim`` explicit
    or hidden_size / num_attention_heads. Keys absent from the config are absent here."""
    params = config.get("rope_parameters")
    scaling = config.get("rope_scaling")
    merged = {
        **(params if isinstance(params, dict) else {}),
        **(scaling if isinstance(scaling, dict) else {}),
    }
    view: dict[str, Any] = {}
    theta = config.get("rope_theta")
    if theta is None:  # absent or null at the top: transformers 5 keeps it in rope_parameters
        theta = merged.get("rope_theta")
    if theta is not None:
        view["rope_theta"] = theta
    view["rope_type"] = merged.get("rope_type") or merged.get("type") or "default"
    for key, value in merged.items():
        if key not in {"rope_theta", "rope_type", "type", "partial_rotary_factor"}:
            view[key] = value
    partial = config.get("partial_rotary_factor")
    if partial is None:
        partial = merged.get("partial_rotary_factor")
    if partial is not None:
        view["partial_rotary_factor"] = partial
    head_dim = config.get("head_dim")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if head_dim is None and isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
        head_dim = hidden // heads
    if head_dim is not None:
        view["head_dim"] = head_dim
    return view


def _same(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return bool(a == b)


def _rope_differences(view: dict[str, Any], fact: RopeFact, default_theta: float) -> dict[str, str]:
    """field -> 'actual where <checkpoint> has expected', for each field of ``fact.rope`` the
    config disagrees with. An absent rope_theta is the engines' default; an absent
    partial_rotary_factor is not judged (transformers fills in the family's own default, e.g.
    0.5 for glm4_moe)."""
    out = {}
    for key, expected in fact.rope.items():
        actual = view.get(key)
        shown = repr(actual)
        if key == "rope_theta" and actual is None:
            actual, shown = default_theta, f"absent (transformers' default {default_theta})"
        elif key == "partial_rotary_factor" and actual is None:
            continue
        if not _same(actual, expected):
            out[key] = f"{key} {shown} where {fact.name} has {expected!r}"
    return out


def _rope_family(config: dict[str, Any]) -> list[Finding]:
    facts = rope_facts()
    candidates = [
        f
        for f in facts.checkpoints
        if f.model_type == config.get("model_type")
        and all(_same(config.get(k), v) for k, v in f.match.items())
    ]
    if not candidates:
        return []  # no official checkpoint of this shape on record: nothing to compare with
    view = rope_view(config)
    diffs = [(_rope_differences(view, f, facts.default_rope_theta), f) for f in candidates]
    if any(not d for d, _ in diffs):
        return []
    differences, fact = min(diffs, key=lambda pair: len(pair[0]))
    expected = ", ".join(f"{k} to {fact.rope[k]!r}" for k in differences)
    return [
        Finding(
            id="rope_family",
            severity="warning",
            message=f"rope: {'; '.join(differences.values())} ({fact.source}): engines rotate "
            "positions unlike the model's training, unless this checkpoint changed its rope "
            "on purpose",
            fix=f"unless it is a deliberate variant, set {expected} as in {fact.source}",
        )
    ]


def lint_checkpoint(
    root: Path, config: dict[str, Any], tensor_names: Iterable[str] | None
) -> list[Finding]:
    """Every static finding on one checkpoint directory (``tensor_names`` None: config only)."""
    return [
        *_special_tokens(root, config),
        *_head(config, tensor_names),
        *_rope_reach(config),
        *_rope_family(config),
    ]


def _kept(config: dict[str, Any]) -> dict[str, Any]:
    """The config without what a conversion rewrites and without the rope fields, compared by
    value in :func:`_rope_changes` (also inside nested text configs)."""
    return {
        k: _kept(v) if isinstance(v, dict) else v
        for k, v in config.items()
        if k not in CONVERTED_KEYS | ROPE_KEYS
    }


def _rope_changes(source: dict[str, Any], converted: dict[str, Any], where: str = "") -> list[str]:
    """'field source-value -> converted-value' for each rope field that differs (a rewrite
    from rope_theta to rope_parameters with the same values is no change)."""
    a, b = rope_view(source), rope_view(converted)
    changes = [
        f"{where}{k} {a.get(k)!r} -> {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if not _same(a.get(k), b.get(k))
    ]
    for key in sorted((set(source) | set(converted)) - ROPE_KEYS - CONVERTED_KEYS):
        sub_a, sub_b = source.get(key), converted.get(key)  # a nested text config
        if (
            isinstance(sub_a, dict)
            and isinstance(sub_b, dict)
            and any(k in sub_a or k in sub_b for k in ROPE_KEYS)
        ):
            changes += _rope_changes(sub_a, sub_b, f"{where}{key}.")
    return changes


def compare_side_files(source: Path, converted: Path) -> list[Finding]:
    """A converted checkpoint must keep its source's config (but for quantization and dtype),
    tokenizer, chat template and generation config."""
    findings: list[Finding] = []
    src_config, out_config = _json(source / "config.json"), _json(converted / "config.json")
    rope = _rope_changes(src_config, out_config)
    if rope:
        findings.append(
            Finding(
                id="rope_changed",
                severity="error",
                message=f"config.json of {converted.name} changes the source's rope: "
                f"{'; '.join(rope)} (source -> converted)",
                fix="convert again from the source, or copy its rope fields back",
            )
        )
    a, b = _kept(src_config), _kept(out_config)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if changed:
        findings.append(
            Finding(
                id="config_changed",
                severity="error",
                message=f"config.json of {converted.name} differs from the source's in "
                f"{', '.join(changed[:6])}" + (" ..." if len(changed) > 6 else ""),
                fix="convert again from the source, or copy those fields back",
            )
        )
    for name in SIDE_FILES:
        src, out = source / name, converted / name
        if not src.is_file() and not out.is_file():
            continue
        if not out.is_file() or not src.is_file() or src.read_bytes() != out.read_bytes():
            what = "is missing" if not out.is_file() else "differs from the source's"
            if not src.is_file():
                what = "is not in the source"
            findings.append(
                Finding(
                    id="side_file_changed",
                    severity="error",
                    message=f"{name} of {converted.name} {what}",
                    fix=f"copy {name} from the source checkpoint",
                )
            )
    return findings
