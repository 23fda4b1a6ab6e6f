"""Which files of a model directory are weights, index, tokenizer, and everything else.

Weights, in order of preference:
1. a ``*.safetensors.index.json`` (``model.``, then msModelSlim's ``quant_model_weights.`` (v1
   "ascendv1" save) and ``quant_model_weight.`` (MindIE save), else the only one present): the
   shards its weight_map names;
2. every top-level ``*.safetensors`` (``model.safetensors``, msModelSlim's
   ``quant_model_weights.safetensors`` / ``quant_model_weight_w8a8_dynamic.safetensors``, ...);
3. pickle weights (``pytorch_model*.bin`` with or without ``pytorch_model.bin.index.json``,
   ``*.pt``, ``*.pth``, ``*.ckpt``), only with ``allow_pickle``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from adaptgate.checkpoint.jsonfile import load_json_file
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound, ConfigError, PickleRefused

PREFERRED_INDEXES = (
    "model.safetensors.index.json",
    "quant_model_weights.safetensors.index.json",
    "quant_model_weight.safetensors.index.json",
)
PICKLE_INDEX = "pytorch_model.bin.index.json"
_PICKLE_WEIGHT = re.compile(r"pytorch_model.*\.bin|.*\.(pt|pth|ckpt)")
_WEIGHT_LIKE = re.compile(r".*\.(safetensors|bin|pt|pth|ckpt)|.*\.(safetensors|bin)\.index\.json")
_QUANT_DESCRIPTION = re.compile(r"quant_model_description(_[\w.-]+)?\.json")
TOKENIZER_NAMES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tiktoken.model",
        "chat_template.jinja",
        "chat_template.json",
    }
)


@dataclass
class WeightLayout:
    kind: str  # "safetensors" or "pickle"
    weight_files: list[str]
    index_file: str | None = None
    index: dict[str, Any] | None = None
    weight_map: dict[str, str] = field(default_factory=dict)


def natural_key(name: str) -> list[Any]:
    """Sorts shard 2 before shard 10 even without zero padding."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def list_files(root: Path) -> list[str]:
    """Every file under root (relative POSIX paths), skipping hidden files and directories."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        found.extend((rel / f).as_posix() for f in filenames if not f.startswith("."))
    return sorted(found, key=natural_key)


def is_tokenizer_file(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) == 2 and parts[0] == "additional_chat_templates":
        return parts[1].endswith(".jinja")
    return len(parts) == 1 and (rel in TOKENIZER_NAMES or rel.endswith(".tiktoken"))


def is_weight_like(rel: str) -> bool:
    return _WEIGHT_LIKE.fullmatch(rel.rsplit("/", 1)[-1]) is not None


def find_quant_description(top: list[str]) -> str | None:
    """``quant_model_description.json``, else the one ``quant_model_description_<type>.json``."""
    if "quant_model_description.json" in top:
        return "quant_model_description.json"
    found = [f for f in top if _QUANT_DESCRIPTION.fullmatch(f)]
    if len(found) > 1:
        raise ConfigError(
            f"several msModelSlim descriptions: {', '.join(found)}",
            fix="keep the one that matches the weights and remove the others",
        )
    return found[0] if found else None


def _allowed_roots(root: Path) -> list[Path]:
    real = root.resolve()
    allowed = [real]
    if real.parent.name == "snapshots":  # HF cache: snapshot files link to ../../blobs
        allowed.append(real.parent.parent / "blobs")
    return allowed


def _check_index_entry(
    root: Path, allowed: list[Path], index_file: str, tensor: str, rel: Any
) -> str:
    def bad(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(
            f"{index_file}: tensor {tensor[:200]!r} maps to {str(rel)[:200]!r}, {why}",
            fix="repair the index: weight_map values are file names inside the model directory",
        )

    if type(rel) is not str or not rel:
        raise bad("not a file name")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise bad("an absolute path outside the model directory")
    if ".." in pure.parts or ".." in PureWindowsPath(rel).parts:
        raise bad("a path that leaves the model directory ('..')")
    target = (root / rel).resolve()
    if not any(target.is_relative_to(base) for base in allowed):
        raise bad(f"which resolves outside the model directory (to {target})")
    return pure.as_posix()


def _layout_from_index(root: Path, index_file: str, kind: str) -> WeightLayout:
    index = load_json_file(root / index_file, index_file)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConfigError(
            f"{index_file} has no weight_map object naming the tensors",
            fix='an index is {"metadata": {...}, "weight_map": {"<tensor>": "<file>"}}',
        )
    allowed = _allowed_roots(root)
    checked: dict[str, str] = {}
    files: dict[Any, str] = {}  # raw entry -> checked name; each distinct entry checked once
    for tensor, rel in weight_map.items():
        name = files.get(rel) if type(rel) is str else None
        if name is None:
            name = _check_index_entry(root, allowed, index_file, tensor, rel)
            files[rel] = name
        checked[tensor] = name
    shards = sorted(set(files.values()), key=natural_key)
    for name in shards:
        if not (root / name).is_file():
            raise CheckpointNotFound(
                f"{index_file} names shard {name}, which is missing from {root}",
                fix="download or copy the missing shard (an interrupted download?)",
            )
    return WeightLayout(kind, shards, index_file, index, checked)


def find_weights(root: Path, top: list[str], *, allow_pickle: bool) -> WeightLayout:
    """Picks the weight files of a model directory (``top``: its top-level file names)."""
    indexes = [f for f in top if f.endswith(".safetensors.index.json")]
    if indexes:
        preferred = [f for f in PREFERRED_INDEXES if f in indexes]
        if preferred:
            return _layout_from_index(root, preferred[0], "safetensors")
        if len(indexes) == 1:
            return _layout_from_index(root, indexes[0], "safetensors")
        raise CheckpointFormatError(
            f"{root} holds several safetensors indexes ({', '.join(indexes)})",
            fix="remove the stale ones so that one index describes the weights",
        )
    shards = [f for f in top if f.endswith(".safetensors")]
    if shards:
        return WeightLayout("safetensors", shards)
    pickles = [f for f in top if _PICKLE_WEIGHT.fullmatch(f)]
    if PICKLE_INDEX in top or pickles:
        shown = PICKLE_INDEX if PICKLE_INDEX in top else pickles[0]
        if not allow_pickle:
            raise PickleRefused(
                f"{root} has only pickle weights ({shown}), refused: pickle can run code",
                fix="convert to safetensors or pass --allow-pickle",
            )
        if PICKLE_INDEX in top:
            return _layout_from_index(root, PICKLE_INDEX, "pickle")
        return WeightLayout("pickle", pickles)
    raise CheckpointNotFound(
        f"no weight files in {root} (no *.safetensors, no pytorch_model*.bin)",
        fix="pass the directory that holds the weights, or finish the download",
    )
