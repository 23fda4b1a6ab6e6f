"""Checkpoint consistency lint: faults that change nothing on one engine and bite on another,
found statically, each as a finding with its fix.

- special tokens: the generation's stop ids (generation_config.json, else config.json), the
  tokenizer's eos_token and the chat template's end-of-turn marker must agree;
- ``tie_word_embeddings: false`` with no ``lm_head`` weight (vLLM loads it and serves garbage);
- ``max_position_embeddings`` beyond what the rope scaling reaches;
- a converted checkpoint's side files (config fields other than quantization and dtype,
  tokenizer, chat template, generation config) against its source's (:func:`compare_side_files`).

Errors make inspect FAIL; warnings are reported beside its verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

# markers chat templates end a turn with, and that the generation must stop on
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|user|>", "</s>")
# config.json fields a conversion legitimately rewrites
CONVERTED_KEYS = frozenset({"quantization_config", "torch_dtype", "dtype", "transformers_version"})
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


def lint_checkpoint(
    root: Path, config: dict[str, Any], tensor_names: Iterable[str] | None
) -> list[Finding]:
    """Every static finding on one checkpoint directory (``tensor_names`` None: config only)."""
    return [*_special_tokens(root, config), *_head(config, tensor_names), *_rope_reach(config)]


def _kept(config: dict[str, Any]) -> dict[str, Any]:
    """The config without what a conversion rewrites (also inside nested text configs)."""
    return {
        k: _kept(v) if isinstance(v, dict) else v
        for k, v in config.items()
        if k not in CONVERTED_KEYS
    }


def compare_side_files(source: Path, converted: Path) -> list[Finding]:
    """A converted checkpoint must keep its source's config (but for quantization and dtype),
    tokenizer, chat template and generation config."""
    findings: list[Finding] = []
    a, b = _kept(_json(source / "config.json")), _kept(_json(converted / "config.json"))
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
