"""run.json: the record of one run -- every gate's status, timings, measured values, artifacts."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError, model_validator

from adaptgate.errors import RunDirError
from adaptgate.messages import Message
from adaptgate.results import Result, write_text_atomic
from adaptgate.settings import Settings, load_settings

RUN_FILE = "run.json"
RENDERING = frozenset({"report"})  # gates that render what others measured, measuring nothing
# The KV-cache dtypes a server launches with (vLLM's --kv-cache-dtype; int8: vllm-ascend's C8)
KV_CACHE_DTYPES = ("auto", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2", "int8")

M = TypeVar("M", bound=BaseModel)


class GateStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    # The gate measured, but its own validity checks rejected the measurement every time it was
    # tried (a benchmark client starved of CPU): neither a PASS nor a FAIL of the model.
    INCONCLUSIVE = "INCONCLUSIVE"


class GateRecord(BaseModel):
    """One gate's outcome. ``result`` is the gate's full typed result as JSON."""

    name: str
    title: str
    status: GateStatus
    reason: str = Field(description="why this status: the verdict's reason, skip reason or error")
    reason_id: str | None = Field(
        default=None,
        description="the reason as a message id of adaptgate.messages (reason: its English text)",
    )
    reason_params: dict[str, Any] = Field(
        default_factory=dict, description="the message's parameters"
    )
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    summary: dict[str, Any] = Field(
        default_factory=dict, description="the key measured values, for the summary table"
    )
    artifacts: list[str] = Field(
        default_factory=list, description="files the gate wrote, relative to the run directory"
    )
    result: dict[str, Any] | None = None
    exit_code: int | None = Field(
        default=None, description="for ERROR: 2 bad input, 3 internal error"
    )

    def reason_message(self) -> Message | str:
        """The reason as its message when the gate recorded one, else the stored text."""
        return Message(self.reason_id, self.reason_params) if self.reason_id else self.reason

    def result_as(self, model: type[M]) -> M | None:
        """``result`` validated into the gate's typed ``model`` (None when it left none). One
        this version cannot read (run.json of another adaptgate version) is a RunDirError."""
        if self.result is None:
            return None
        try:
            return model.model_validate(self.result)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(map(str, error["loc"])) or "result"
            raise RunDirError(
                f"run.json's {self.name} result is not a {model.__name__} this adaptgate reads "
                f"({where}: {error['msg']})",
                fix="redo the run with this adaptgate (`adaptgate run ... --fresh`), or read it "
                "with the version that wrote it",
            ) from None


class RunSettings(BaseModel):
    """What the run was asked to do; a resumed run must ask the same."""

    model: str
    target: str
    device: str | None = None
    devices: int = 1
    release: str | None = Field(
        default=None,
        description="engine release to plan for; default: the installed one, else the newest",
    )
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    allow_pickle: bool = False
    convert_to: str | None = Field(
        default=None,
        description="bf16, fp16 or w8a8-dynamic (--convert-to, else ADAPTGATE_CONVERT_TO); "
        "default: inspect's route",
    )
    url: str | None = Field(
        default=None,
        description="an OpenAI-compatible server already running (e.g. vllm-ascend launched "
        "from the runbook): the endpoint gates use it instead of starting vLLM here",
    )
    kv_cache_dtype: str | None = Field(
        default=None,
        description="the KV-cache dtype the server launches with (one of KV_CACHE_DTYPES; the "
        "kvcache gate tests it); default: the kvcache gate's verdict, else auto",
    )
    kv_formats: str | None = Field(
        default=None,
        description="KV-cache formats the kvcache gate tests, whose verdict picks the launch "
        "dtype (fp8_e4m3,fp8_e5m2,int8_c8 or all; the option, else ADAPTGATE_KVCACHE); default: "
        "only when the plan would use a quantized cache",
    )
    server_log: str | None = Field(
        default=None,
        description="with url: the server's log, read for its versions and launch arguments",
    )
    accuracy_baseline: str | None = Field(
        default=None,
        description="the accuracy gate's baseline: an accuracy result JSON or a run directory "
        "whose accuracy gate ran (typically the BF16 route's); without it the gate records "
        "accuracy but cannot judge it (INCONCLUSIVE)",
    )
    max_memory: int | None = Field(
        default=None,
        description="bytes of dequantized weights the CPU reference may hold (--max-memory): a "
        "model over it is layer-streamed; default: 60% of MemAvailable",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="the ADAPTGATE_* variables that shape a run (adaptgate.settings.RUN_SHAPING) "
        "that were set",
    )

    @model_validator(mode="before")
    @classmethod
    def _formats_were_kv_cache_dtype(cls, data: Any) -> Any:
        """run.json written before ``kv_formats`` kept the formats to test in ``kv_cache_dtype``:
        a value there that is no launch dtype moves over, so such a run still resumes."""
        if isinstance(data, dict) and data.get("kv_formats") is None:
            old = data.get("kv_cache_dtype")
            if old is not None and old not in KV_CACHE_DTYPES:
                return {**data, "kv_cache_dtype": None, "kv_formats": old}
        return data

    def with_environment(self, environment: Settings | None = None) -> RunSettings:
        """These settings completed from the environment (default: read now):
        ADAPTGATE_CONVERT_TO and ADAPTGATE_KVCACHE where no option gave the value, and ``env``.
        Gates read only these, so a run resumed in another environment is refused rather than
        silently differing."""
        environment = environment or load_settings()
        update = {
            "convert_to": self.convert_to or environment.convert_to,
            "kv_formats": self.kv_formats or environment.kvcache,
            "env": environment.run_env(),
        }
        return self.model_copy(update=update)


class RunRecord(Result):
    kind: str = "run"
    run_dir: str
    settings: RunSettings
    gates: list[GateRecord] = Field(default_factory=list)

    def gate(self, name: str) -> GateRecord | None:
        return next((g for g in self.gates if g.name == name), None)

    def put(self, record: GateRecord) -> None:
        self.gates = [g for g in self.gates if g.name != record.name] + [record]

    @property
    def verdict(self) -> GateStatus:
        """ERROR, else FAIL, else INCONCLUSIVE if any gate is; SKIPPED when no gate measured
        anything (every one skipped, the report aside): that is not a PASS; else PASS."""
        statuses = {g.status for g in self.gates}
        for worst in (GateStatus.ERROR, GateStatus.FAIL, GateStatus.INCONCLUSIVE):
            if worst in statuses:
                return worst
        if not self.measured:
            return GateStatus.SKIPPED
        return GateStatus.PASS

    @property
    def measured(self) -> list[GateRecord]:
        """The gates that produced a verdict of their own (not skipped; the report renders)."""
        return [
            g for g in self.gates if g.status is not GateStatus.SKIPPED and g.name not in RENDERING
        ]

    def save(self, run_dir: Path) -> Path:
        path = run_dir / RUN_FILE
        write_text_atomic(path, self.to_json() + "\n")
        return path


def load_run(run_dir: Path) -> RunRecord:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise RunDirError(
            f"{run_dir} holds no {RUN_FILE}",
            fix="pass the directory an `adaptgate run` wrote (it contains run.json)",
        )
    try:
        return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise RunDirError(
            f"{path} is not a valid run record: {first}",
            fix="rerun `adaptgate run` into a new --run-dir",
        ) from None
