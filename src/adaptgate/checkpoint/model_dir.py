"""A model directory opened for reading: config, file lists and every tensor's header entry.

Opening reads the JSON files and the safetensors headers only; tensor data is read on demand by
:meth:`Checkpoint.read_tensor`. torch is imported only there (and for opt-in pickle weights).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptgate.checkpoint.dtypes import dtype_for_torch
from adaptgate.checkpoint.header import SafetensorsHeader, TensorInfo, read_safetensors_header
from adaptgate.checkpoint.hf_cache import resolve_model_path
from adaptgate.checkpoint.jsonfile import load_json_file
from adaptgate.checkpoint.layout import (
    WeightLayout,
    find_quant_description,
    find_weights,
    is_tokenizer_file,
    is_weight_like,
    list_files,
)
from adaptgate.errors import CheckpointFormatError, CheckpointNotFound, UnknownKind

if TYPE_CHECKING:
    import torch

_TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config")


@dataclass(eq=False)
class Checkpoint:
    """A model directory: JSON files parsed, weight headers read, tensors on demand."""

    root: Path
    config: dict[str, Any]
    generation_config: dict[str, Any] | None
    quant_description: dict[str, Any] | None  # msModelSlim quant_model_description*.json
    weight_files: list[str]  # relative names, in order
    index: dict[str, Any] | None  # the parsed index JSON when sharded with an index
    tensors: dict[str, TensorInfo]  # every tensor of every weight file
    tokenizer_files: list[str]
    other_files: list[str]  # the rest, to be copied by a converter
    weight_format: str = "safetensors"  # or "pickle" (only with allow_pickle)
    index_file: str | None = None
    quant_description_file: str | None = None
    ignored_files: list[str] = field(default_factory=list)  # weight-like files not used
    headers: dict[str, SafetensorsHeader] = field(default_factory=dict)  # per weight file
    _pickled: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def text_config(self) -> dict[str, Any]:
        """The language model's config: ``text_config`` (or ``llm_config`` /
        ``language_config``) of a multimodal wrapper, else the config itself."""
        for key in _TEXT_CONFIG_KEYS:
            inner = self.config.get(key)
            if isinstance(inner, dict):
                return inner
        return self.config

    def config_dtype(self) -> str | None:
        """``dtype`` (transformers 5) or ``torch_dtype``, top level first, then the text config."""
        for cfg in (self.config, self.text_config()):
            for key in ("dtype", "torch_dtype"):
                value = cfg.get(key)
                if isinstance(value, str) and value:
                    return value.removeprefix("torch.")
        return None

    def read_tensor(self, name: str) -> torch.Tensor:
        """Reads only that tensor's bytes."""
        info = self.tensors.get(name)
        if info is None:
            close = difflib.get_close_matches(name, list(self.tensors), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "list the tensor names first"
            raise UnknownKind(f"no tensor {name!r} in {self.root}", fix=hint)
        header = self.headers.get(info.file)
        if header is not None:
            from adaptgate.checkpoint.tensor_io import read_safetensors_tensor

            return read_safetensors_tensor(header, info)
        tensors = self._pickled.get(info.file)
        if tensors is None:
            from adaptgate.checkpoint.tensor_io import load_pickle_tensors

            tensors = self._pickled[info.file] = load_pickle_tensors(
                self.root / info.file, info.file
            )
        return tensors[name]

    def total_bytes(self) -> int:
        """Sum of the tensors' data sizes (headers excluded)."""
        return sum(info.nbytes for info in self.tensors.values())


def _read_safetensors(root: Path, layout: WeightLayout) -> dict[str, SafetensorsHeader]:
    headers: dict[str, SafetensorsHeader] = {}
    owner: dict[str, str] = {}
    for rel in layout.weight_files:
        header = read_safetensors_header(root / rel, file_label=rel)
        for name in header.tensors:
            first = owner.setdefault(name, rel)
            if first != rel:
                raise CheckpointFormatError(
                    f"tensor {name[:200]!r} is stored twice, in {first} and in {rel}",
                    fix="remove the stale shard (or fix the index) so each tensor is stored once",
                )
        headers[rel] = header
    return headers


def _read_pickles(
    root: Path, layout: WeightLayout
) -> tuple[dict[str, TensorInfo], dict[str, dict[str, Any]]]:
    from adaptgate.checkpoint.tensor_io import load_pickle_tensors

    loaded: dict[str, dict[str, Any]] = {}
    tensors: dict[str, TensorInfo] = {}
    for rel in layout.weight_files:
        loaded[rel] = load_pickle_tensors(root / rel, rel)
        for name, t in loaded[rel].items():
            if name in tensors:
                raise CheckpointFormatError(
                    f"tensor {name[:200]!r} is stored twice, in {tensors[name].file} and in {rel}",
                    fix="remove the stale file so each tensor is stored once",
                )
            try:
                code = dtype_for_torch(t.dtype).code
            except UnknownKind:
                raise CheckpointFormatError(
                    f"{rel}: tensor {name[:200]!r} has dtype {t.dtype}, which safetensors lacks",
                    fix="cast it to a supported dtype before converting",
                ) from None
            shape = tuple(t.shape)
            if code == "F4" and shape:  # float4_e2m1fn_x2 packs two values per element
                shape = (*shape[:-1], shape[-1] * 2)
            nbytes = t.numel() * t.element_size()
            tensors[name] = TensorInfo(name, code, shape, rel, (0, nbytes))
    return tensors, loaded


def _check_index_tensors(layout: WeightLayout, tensors: dict[str, TensorInfo]) -> None:
    for name, rel in layout.weight_map.items():
        info = tensors.get(name)
        if info is None or info.file != rel:
            where = f"it is in {info.file}" if info else "no weight file has it"
            raise CheckpointFormatError(
                f"{layout.index_file} puts tensor {name[:200]!r} in {rel}, but {where}",
                fix="regenerate the index from the shards (or restore the right shard)",
            )


def open_checkpoint(spec: str | Path, *, allow_pickle: bool = False) -> Checkpoint:
    """Opens a model directory (or a Hub id in the local cache): JSON files and headers only."""
    root = resolve_model_path(spec)
    if not (root / "config.json").is_file():
        raise CheckpointNotFound(
            f"no config.json in {root}",
            fix="pass the model directory itself (the one holding config.json and the weights)",
        )
    config = load_json_file(root / "config.json", "config.json")
    files = list_files(root)
    top = [f for f in files if "/" not in f]
    generation_config = (
        load_json_file(root / "generation_config.json", "generation_config.json")
        if "generation_config.json" in top
        else None
    )
    desc_file = find_quant_description(top)
    quant_description = load_json_file(root / desc_file, desc_file) if desc_file else None

    layout = find_weights(root, top, allow_pickle=allow_pickle)
    headers: dict[str, SafetensorsHeader] = {}
    pickled: dict[str, dict[str, Any]] = {}
    if layout.kind == "safetensors":
        headers = _read_safetensors(root, layout)
        tensors = {n: i for h in headers.values() for n, i in h.tensors.items()}
    else:
        tensors, pickled = _read_pickles(root, layout)
    _check_index_tensors(layout, tensors)

    used = {"config.json", *layout.weight_files, layout.index_file, desc_file}
    tokenizer_files = [f for f in files if f not in used and is_tokenizer_file(f)]
    rest = [f for f in files if f not in used and not is_tokenizer_file(f)]
    return Checkpoint(
        root=root,
        config=config,
        generation_config=generation_config,
        quant_description=quant_description,
        weight_files=list(layout.weight_files),
        index=layout.index,
        tensors=tensors,
        tokenizer_files=tokenizer_files,
        other_files=[f for f in rest if not is_weight_like(f)],
        weight_format=layout.kind,
        index_file=layout.index_file,
        quant_description_file=desc_file,
        ignored_files=[f for f in rest if is_weight_like(f)],
        headers=headers,
        _pickled=pickled,
    )
