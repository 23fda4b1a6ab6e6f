"""Everything besides the weights: config.json rewritten (with the compressed-tensors
``quantization_config`` of a W8A8 output in that layout), the index, the Ascend description (a
W8A8 output in msModelSlim's layout), and the tokenizer, generation config, chat template and
other files copied unchanged."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

from adaptgate.checkpoint import Checkpoint
from adaptgate.convert.layout import index_json, natural_key
from adaptgate.convert.models import ConversionPlan, OutputFormat
from adaptgate.results import write_text_atomic

_NESTED = ("text_config", "llm_config", "language_config")
# 2-D weights that belong to no Linear: token/position embeddings (never quantized, never listed)
_EMBEDDING = re.compile(r"(^|\.)(\w*embed\w*|wte|wpe)\.weight$")


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


def float_linears(plan: ConversionPlan, config: dict[str, Any]) -> list[str]:
    """The Linears a compressed-tensors W8A8 output leaves in float, for its ``ignore`` list:
    every module with a 2-D ``.weight`` not written as int8 (the LM head, MoE routers, modules
    the source left unquantized, fused groups kept float), embeddings aside."""
    modules = {
        t.name.removesuffix(".weight")
        for t in plan.tensors
        if t.name.endswith(".weight")
        and len(t.shape) == 2
        and t.dtype != "I8"
        and not _EMBEDDING.search(t.name)
    }
    # a tied LM head has no tensor of its own, yet loaders build it as a Linear that the
    # "Linear" target would match: it stays float with the embeddings it shares
    tied = any(c.get("tie_word_embeddings") for c in _configs(config))
    if tied and "lm_head.weight" not in plan.by_name():
        modules.add("lm_head")
    return sorted(modules, key=natural_key)


def _configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The config and its nested text config, if any."""
    return [config, *(config[k] for k in _NESTED if isinstance(config.get(k), dict))]


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
    """Index, description (modelslim), copied files and config.json (last); returns what was
    written."""
    written = copy_side_files(ckpt, dest)
    if plan.index_file:
        write_text_atomic(dest / plan.index_file, index_json(plan.shards, plan.tensors))
        written.append(plan.index_file)
    if plan.format is OutputFormat.MODELSLIM:
        from adaptgate.formats import ascend

        types = {t.name: t.ascend_type or ascend.FLOAT for t in plan.tensors}
        write_text_atomic(dest / ascend.DESCRIPTION_FILE, ascend.description_text(types))
        written.append(ascend.DESCRIPTION_FILE)
    config = rewrite_config(ckpt.config, plan)
    if plan.format is OutputFormat.COMPRESSED_TENSORS:
        from adaptgate.formats.compressed_tensors import int8_quantization_config

        config["quantization_config"] = int8_quantization_config(float_linears(plan, ckpt.config))
    write_text_atomic(dest / "config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    written.append("config.json")
    return written
