"""What a demo checkpoint looks like: the typed spec the factory and the CLI share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from adaptgate.errors import UsageError

ARCHS = ("qwen3", "qwen3_moe", "glm4_moe")
FORMATS = (
    "bf16",
    "fp8_block",
    "ct_fp8_channel",
    "ct_fp8_tensor",
    "ct_fp8_block",
    "w8a8_dynamic",
)
BLOCK_FORMATS = ("fp8_block", "ct_fp8_block")
ScaleDtype = Literal["float32", "bfloat16", "float16"]
DEFAULT_BLOCK = (128, 128)
DEFAULT_SCALE_DTYPE: ScaleDtype = "bfloat16"


class DemoSpec(BaseModel):
    """A tiny checkpoint: architecture, on-disk format, sharding, seed and format options.

    ``block``/``scale_dtype``/``ue8m0`` are FP8-block options (``block`` also applies to
    ``ct_fp8_block``); left as None they take the format's default. ``non_divisible`` picks
    dimensions that are not multiples of 128 (for conversion tests; vLLM cannot load those).
    ``modules_to_not_convert`` names modules (or module prefixes such as
    ``model.layers.0.mlp``) whose Linear weights stay bf16 and are listed in the config.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        from adaptgate.demo.archs import ARCH_REGISTRY

        ARCH_REGISTRY.get(value)  # raises UnknownKind listing the valid names
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
