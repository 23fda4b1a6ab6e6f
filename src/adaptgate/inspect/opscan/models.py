"""The operator scan's typed result: what the model's code uses and what vllm-ascend provides."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

OpKind = Literal["layer", "custom op", "triton", "quant"]
OpStatus = Literal["supported", "needs verification", "not checked"]
STATUSES: tuple[OpStatus, ...] = ("supported", "needs verification", "not checked")


class FoundOp(BaseModel):
    """One operator the model's code reaches, as found in the vLLM (or remote-code) tree."""

    op: str = Field(description="class, kernel or quantization method name")
    kind: OpKind
    defined_at: str = Field(description="file:line in the scanned tree")
    detail: str = Field("", description="CustomOp / PluggableLayer and its registered name")
    used_by: str = Field("", description="the model class that reaches it")
    attention: bool = Field(False, description="an Attention layer: the platform's backend runs it")


class ScanRow(FoundOp):
    status: OpStatus
    evidence: str = Field(description="file:line in the vllm-ascend tree, or why not")


class OperatorScan(BaseModel):
    """``adaptgate operators``: the model's operators checked against a vllm-ascend tree."""

    architecture: str
    model_class: str | None = Field(None, description="module.Class the architecture runs as")
    model_source: str | None = Field(None, description="file:line, or the remote-code file")
    remote_code: bool = False
    vllm_src: str | None = None
    vllm_version: str | None = None
    vllm_ascend_src: str | None = None
    vllm_ascend_release: str | None = Field(None, description="the scanned tree's version")
    vllm_ascend_release_from: str | None = Field(None, description="where that version was read")
    rows: list[ScanRow] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def checked(self) -> bool:
        return self.vllm_ascend_src is not None

    def count(self, status: OpStatus) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def summary(self) -> str:
        if not self.rows:
            return "; ".join(self.notes) or "no operators found"
        counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := self.count(s)))
        return f"{len(self.rows)} operators: {counts}"
