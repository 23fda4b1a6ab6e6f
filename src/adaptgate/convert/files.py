"""Everything besides the weights: config.json rewritten, the index, the Ascend description,
and the tokenizer, generation config, chat template and other files copied unchanged."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from adaptgate.checkpoint import Checkpoint
from adaptgate.convert.layout import index_json
from adaptgate.convert.models import ConversionPlan, Target
from adaptgate.results import write_text_atomic

_NESTED = ("text_config", "llm_config", "language_config")


def _set_dtype(cfg: dict[str, Any], dtype: str) -> None:
    cfg.pop("quantization_config", None)
    keys = [k for k in ("dtype", "torch_dtype") if k in cfg]
    for key in keys or ["torch_dtype"]:
        cfg[key] = dtype


def rewrite_config(config: dict[str, Any], plan: ConversionPlan) -> dict[str, Any]:
    """``quantization_config`` removed (Ascend's is the description file), ``dtype`` /
    ``torch_dtype`` set to the output dtype, at the top level and in a nested text config."""
    cfg = copy.deepcopy(config)
    _set_dtype(cfg, plan.config_dtype)
    for key in _NESTED:
        if isinstance(cfg.get(key), dict):
            nested = cfg[key]
            nested.pop("quantization_config", None)
            for k in ("dtype", "torch_dtype"):
                if k in nested:
                    nested[k] = plan.config_dtype
    return cfg


def copy_side_files(ckpt: Checkpoint, dest: Path) -> list[str]:
    """Copies the tokenizer and every other non-weight file (paths kept); returns their names."""
    copied = []
    for rel in [*ckpt.tokenizer_files, *ckpt.other_files]:
        if rel in ("config.json", "conversion.json"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ckpt.root / rel, target)
        copied.append(rel)
    return copied


def write_model_files(ckpt: Checkpoint, plan: ConversionPlan, dest: Path) -> list[str]:
    """Index, description (w8a8), copied files and config.json (last); returns what was written."""
    written = copy_side_files(ckpt, dest)
    if plan.index_file:
        write_text_atomic(dest / plan.index_file, index_json(plan.shards, plan.tensors))
        written.append(plan.index_file)
    if plan.target is Target.W8A8_DYNAMIC:
        from adaptgate.formats import ascend

        types = {t.name: t.ascend_type or ascend.FLOAT for t in plan.tensors}
        write_text_atomic(dest / ascend.DESCRIPTION_FILE, ascend.description_text(types))
        written.append(ascend.DESCRIPTION_FILE)
    config = rewrite_config(ckpt.config, plan)
    write_text_atomic(dest / "config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    written.append("config.json")
    return written
