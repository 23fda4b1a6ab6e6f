"""A reference dump: a directory with ``reference.json`` (metadata, a typed result) and
``reference.safetensors`` (the tensors, float32 unless noted).

Tensor names, per prompt index ``k`` (in the order of ``prompts`` in the JSON):

- ``prompt.k.logits`` ``[T, V]``: final logits at every prompt position (teacher-forced);
- ``prompt.k.hidden.embed`` and ``prompt.k.hidden.<i>`` ``[T, H]``: the embeddings and the
  hidden state after decoder layer ``i`` (before the final norm), for the dumped layers;
- ``gen.k.logits`` ``[N, V]``: the logits continuation token ``n`` is scored under: chosen
  greedily from them (``continuation: greedy``) or forced (``continuation: forced``, the
  prompt's ``generated_ids`` were given, e.g. a server's continuation, scored in one pass);
- ``gen.k.logprobs`` ``[N]``, ``gen.k.topk_ids`` ``[N, K]`` (int64), ``gen.k.topk_logprobs``
  ``[N, K]``: log-probabilities (log-softmax of the raw logits, computed in float64);
- ``gen.k.argmax`` ``[N]`` and ``gen.k.ranks`` ``[N]`` (int64): the reference's top token at each
  position and the rank of the continuation's token (1 = the top; always 1 when greedy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

from adaptgate.checkpoint.writer import write_safetensors
from adaptgate.errors import CheckpointNotFound, DumpError
from adaptgate.results import Result

if TYPE_CHECKING:
    import torch

META_FILE = "reference.json"
TENSOR_FILE = "reference.safetensors"


class PromptRecord(BaseModel):
    id: str
    category: str
    chat: bool
    text: str
    rendered: str
    token_ids: list[int]
    generated_ids: list[int] = Field(default_factory=list)
    generated_text: str = ""
    stop_reason: Literal["length", "eos"] = "length"


class ModelFacts(BaseModel):
    path: str
    architecture: str
    model_type: str
    num_layers: int
    layer_path: str = Field(default="model.layers", description="module path of the layer list")
    hidden_size: int | None = None
    vocab_size: int | None = None
    quantization: str = Field(description="the checkpoint's scheme label (BF16, FP8_BLOCK, ...)")
    model_hash: str | None = Field(
        default=None,
        description="sha256 over every weight/scale tensor's bytes, by name; None when some "
        "were never read (streamed MoE: experts no token went to)",
    )
    tokenizer_hash: str
    ignored_tensors: list[str] = Field(
        default_factory=list, description="checkpoint tensors no module takes (e.g. MTP layers)"
    )
    unexpected_tensors: list[str] = Field(default_factory=list)


class Timings(BaseModel):
    load_seconds: float
    forward_seconds: float
    total_seconds: float
    peak_rss_bytes: int | None = None
    passes: int | None = Field(default=None, description="passes over the weights")
    bytes_read_per_pass: list[int] = Field(
        default_factory=list, description="checkpoint bytes each pass read (0: all cached)"
    )
    bytes_read_total: int | None = Field(
        default=None, description="checkpoint bytes read in all, a full load's included"
    )
    experts_read_per_pass: list[int] = Field(
        default_factory=list,
        description="streamed MoE: routed experts each pass read (only those tokens went to)",
    )
    routed_experts: int | None = Field(
        default=None, description="routed experts of the MoE layers read by group, all layers"
    )
    cache_hits: int | None = Field(default=None, description="units found in the RAM cache")
    cache_bytes: int | None = Field(default=None, description="dequantized bytes it holds")
    memory_budget_bytes: int | None = Field(
        default=None, description="--max-memory, or the default taken from MemAvailable"
    )


class ReferenceDump(Result):
    kind: str = "reference"
    model: ModelFacts
    device: str
    dtype: str
    mode: Literal["full", "streamed"]
    simulate: str | None = None
    attn_implementation: str | None = None
    layers: list[int] = Field(description="decoder layers whose hidden states are dumped")
    continuation: Literal["greedy", "forced"] = "greedy"
    max_new_tokens: int
    top_k: int
    eos_token_ids: list[int]
    prompts: list[PromptRecord]
    tensors_file: str = TENSOR_FILE
    timings: Timings | None = None


def prompt_key(k: int, what: str) -> str:
    return f"prompt.{k}.{what}"


def gen_key(k: int, what: str) -> str:
    return f"gen.{k}.{what}"


def hidden_key(k: int, layer: int | str) -> str:
    return prompt_key(k, f"hidden.{layer}")


def write_dump(out: Path, meta: ReferenceDump, tensors: dict[str, torch.Tensor]) -> Path:
    """Tensors first (streamed from memory), then the JSON (written atomically): a directory
    with a JSON is complete."""
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    write_safetensors(tensors, out / TENSOR_FILE)
    meta.write_json(out / META_FILE)
    return out


@dataclass
class DumpReader:
    """A dump opened for reading; tensors are read one at a time."""

    path: Path
    meta: ReferenceDump

    def tensor(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        with safe_open(str(self.path / self.meta.tensors_file), framework="pt") as fh:
            if name not in fh.keys():  # noqa: SIM118 - safe_open has keys(), not __contains__
                raise DumpError(
                    f"{self.path} has no tensor {name!r}",
                    fix="regenerate the dump with `adaptgate reference`",
                )
            return fh.get_tensor(name)

    def has(self, name: str) -> bool:
        from safetensors import safe_open

        with safe_open(str(self.path / self.meta.tensors_file), framework="pt") as fh:
            return name in fh.keys()  # noqa: SIM118

    def logits(self, k: int) -> torch.Tensor:
        return self.tensor(prompt_key(k, "logits"))

    def hidden(self, k: int, layer: int | str) -> torch.Tensor:
        return self.tensor(hidden_key(k, layer))

    def argmax(self, k: int) -> list[int]:
        """The reference's top token at each continuation position (a dump written before
        ``gen.k.argmax`` existed was greedy: its tokens are the argmax)."""
        if self.has(gen_key(k, "argmax")):
            return [int(t) for t in self.tensor(gen_key(k, "argmax")).tolist()]
        return list(self.meta.prompts[k].generated_ids)


def open_dump(path: Path) -> DumpReader:
    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise CheckpointNotFound(
            f"{path} is not a reference dump (no {META_FILE})",
            fix="pass the directory `adaptgate reference --out DIR` wrote",
        )
    try:
        meta = ReferenceDump.model_validate_json(meta_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise DumpError(
            f"{meta_file} is not a valid reference dump: {str(exc).splitlines()[0]}",
            fix="regenerate the dump with `adaptgate reference`",
        ) from None
    if not (path / meta.tensors_file).is_file():
        raise DumpError(
            f"{path} lacks {meta.tensors_file}",
            fix="regenerate the dump with `adaptgate reference`",
        )
    return DumpReader(path, meta)
