"""The bf16 master model every format is derived from, and the modules kept unquantized.

A master comes from one of two sources: seeded synthetic weights (:func:`build_master`'s default)
or the real SmolLM2 GGUF (:mod:`adaptgate.demo.smollm2`). Either way it carries everything the
format writers and :func:`adaptgate.demo.build.make_model` write: tensors, configs, tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.checkpoint.writer import atomic_write_text
from adaptgate.demo.archs import ARCH_REGISTRY, ArchDef, Dims
from adaptgate.demo.layout import Layout, LinearSpec, build_layout
from adaptgate.demo.spec import DemoSpec
from adaptgate.demo.tokenizer import tokenizer_files
from adaptgate.demo.weights import master_weights
from adaptgate.errors import UsageError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Master:
    arch: ArchDef
    dims: Dims
    layout: Layout
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any]
    not_convert: tuple[str, ...]  # Linear module names kept in bf16 by request
    generation_config: dict[str, Any]
    tokenizer_files: dict[str, str]  # file name -> text (tokenizer.json, tokenizer_config.json)

    def quantized(self, lin: LinearSpec) -> bool:
        return lin.quantizable and lin.module not in self.not_convert

    def quantized_modules(self) -> dict[str, LinearSpec]:
        return {lin.module: lin for lin in self.layout.linears if self.quantized(lin)}


def resolve_not_convert(layout: Layout, entries: tuple[str, ...]) -> tuple[str, ...]:
    """Expands module names or prefixes to the quantizable Linear modules they cover.

    Every entry must cover at least one such module, and a fused group (q/k/v, gate/up, the
    experts of a layer) is either wholly kept or wholly quantized: vLLM and vllm-ascend load
    each group as one layer with one quantization method.
    """
    quantizable = [lin for lin in layout.linears if lin.quantizable]
    chosen: set[str] = set()
    for entry in entries:
        hits = [
            lin.module
            for lin in quantizable
            if lin.module == entry or lin.module.startswith(entry + ".")
        ]
        if not hits:
            example = quantizable[0].module if quantizable else "model.layers.0.mlp"
            raise UsageError(
                f"modules_to_not_convert entry {entry!r} matches no quantizable Linear",
                fix=f"name a module or prefix such as {example!r}",
            )
        chosen.update(hits)
    for lin in quantizable:
        members = [x.module for x in quantizable if x.group == lin.group]
        kept = [m for m in members if m in chosen]
        if kept and len(kept) != len(members):
            raise UsageError(
                f"fused group {lin.group} is only partly in modules_to_not_convert",
                fix=f"list all of: {', '.join(members[:4])}{' ...' if len(members) > 4 else ''}",
            )
    return tuple(lin.module for lin in quantizable if lin.module in chosen)


def build_master(spec: DemoSpec) -> Master:
    if spec.source == "smollm2":
        from adaptgate.demo.smollm2 import build_smollm2_master

        return build_smollm2_master(spec)
    arch = ARCH_REGISTRY.get(spec.arch)
    dims = arch.dims(spec)
    layout = build_layout(arch, dims, tie_embeddings=spec.tie_embeddings)
    not_convert = resolve_not_convert(layout, spec.modules_to_not_convert)
    return Master(
        arch=arch,
        dims=dims,
        layout=layout,
        tensors=master_weights(layout, spec.seed),
        config=arch.config(dims, spec),
        not_convert=not_convert,
        generation_config=arch.generation_config(),
        tokenizer_files=tokenizer_files(),
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
