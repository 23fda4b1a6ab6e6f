"""The backend support gate: looks the architecture, quantization scheme and KV-cache dtype up in
``support_matrix.yaml`` (data with source notes) for a target and release."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptgate.errors import UsageError
from adaptgate.formats.detect import QuantScheme
from adaptgate.inspect.releases import ReleaseChoice, parse_release, release_in, resolve_release
from adaptgate.messages import Said, said

TARGETS = ("ascend-a2", "ascend-a3", "ascend-a5", "cuda", "cpu")
Verdict = Literal["SUPPORTED", "NEEDS_CONVERSION", "UNSUPPORTED"]


class SupportReport(BaseModel):
    target: str
    release: str
    release_choice: ReleaseChoice | None = Field(
        None, description="the engine release planned for, and why that one"
    )
    architecture: str | None
    architecture_status: str
    scheme_key: str
    quant_status: str
    runs_as: Said | None = None
    loads_as: str | None = Field(
        None,
        description="the dtype a natively served checkpoint takes in memory (bf16: BF16-sized)",
    )
    alternatives: list[str] = Field(
        default_factory=list, description="routes to compare beside serving natively"
    )
    caveats: list[Said] = Field(default_factory=list)
    notes: list[Said] = Field(default_factory=list)
    errors: list[Said] = Field(default_factory=list)
    routes: list[str] = Field(default_factory=list, description="conversion routes that apply")
    sources: list[str] = Field(default_factory=list)
    verdict: Verdict


@lru_cache(maxsize=1)
def load_matrix() -> dict[str, Any]:
    import yaml

    text = resources.files("adaptgate.inspect").joinpath("support_matrix.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def scheme_key(q: QuantScheme) -> str:
    """The matrix key of a detected scheme."""
    if q.method in {"none", "ascend", "awq", "gptq", "bitsandbytes", "other"}:
        return q.method
    if q.method == "fp8":
        return "fp8-block" if q.block_size else "fp8-tensor"
    g = q.groups[0] if q.groups else None
    if g is None:
        return "other"
    if g.weight_bits == 4:
        return "ct-w4a16"
    kind = "fp8" if g.weight_type == "float" else "int8"
    if g.weight_strategy in {"block", "tensor"}:
        return f"ct-{kind}-{g.weight_strategy}"
    return f"ct-{kind}-channel-{'dynamic' if g.activation_dynamic else 'static'}"


def _row_said(row: dict[str, Any], key: str) -> Said:
    """A row's sentence with its Chinese beside it (``note`` and ``note_zh``)."""
    return Said(text=row.get(key, ""), zh=row.get(f"{key}_zh"))


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _row_matches(row: dict[str, Any], key: str, target: str, release: tuple[int, int]) -> bool:
    if key not in _listify(row.get("scheme", row.get("dtype"))):
        return False
    if "targets" in row and target not in row["targets"]:
        return False
    bounds = row.get("releases")
    return not bounds or release_in(release, bounds)


def host_cpu_flags() -> frozenset[str] | None:
    """The flags of this host's CPU (/proc/cpuinfo), None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def check_support(
    target: str,
    release: str | None,
    architecture: str | None,
    quant: QuantScheme,
    *,
    kv_cache_dtype: str = "auto",
    compute_capability: float | None = None,
    cpu_flags: frozenset[str] | None = None,
) -> SupportReport:
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}", fix=f"use one of: {', '.join(TARGETS)}")
    matrix = load_matrix()
    choice = resolve_release(target, release)
    release = choice.release
    rel = parse_release(release)
    caveats: list[Said] = []
    sources: set[str] = set()
    notes: list[Said] = []
    errors: list[Said] = []
    arch_row = matrix["architectures"].get(architecture or "", {})
    arch_status = arch_row.get(target, "unknown")
    if arch_row:
        sources.add(matrix["sources"][arch_row["source"]])
    if arch_status == "unsupported":
        errors.append(said("inspect.arch_unsupported", architecture=architecture, target=target))
    elif arch_status == "unknown":
        notes.append(said("inspect.arch_unknown", architecture=architecture, target=target))
    key = scheme_key(quant)
    row = next((r for r in matrix["quantization"] if _row_matches(r, key, target, rel)), None)
    status, runs_as, routes = "unknown", None, ["bf16"] if quant.is_quantized else []
    if row:
        status = row["status"]
        runs_as = _row_said(row, "runs_as") if row.get("runs_as") else None
        routes = list(row.get("routes", routes))
        sources.add(matrix["sources"][row["source"]])
        notes += [_row_said(row, "note")] if row.get("note") else []
        if row.get("caveat"):
            caveats.append(_row_said(row, "caveat"))
            sources.add(matrix["sources"][row["caveat_source"]])
        min_cc = row.get("min_compute_capability")
        if min_cc and compute_capability is not None and compute_capability < min_cc:
            below = _row_said(row, "below_min")
            notes.append(
                said(
                    "inspect.below_min_cc", capability=compute_capability, minimum=min_cc, why=below
                )
            )
        flag = row.get("requires_cpu_flag")
        if flag and cpu_flags is None:
            notes.append(said("inspect.cpu_flag_unknown", flag=flag))
        elif flag and cpu_flags is not None and flag not in cpu_flags:
            status = "unsupported"
            row = {
                **row,
                "error": row["missing_flag_error"],
                "error_zh": row.get("missing_flag_error_zh"),
            }
        if status == "unsupported":
            error = _row_said(row, "error")
            errors.append(
                said(
                    "inspect.quant_unsupported",
                    label=quant.label,
                    key=key,
                    target=target,
                    release=release,
                    error=error,
                )
            )
    if not target.startswith("ascend"):
        routes = [r for r in routes if r != "w8a8_dynamic"]
    kv_key = {"auto": None, "bf16": None, "fp8": "fp8", "int8": "int8"}.get(kv_cache_dtype)
    kv_row = next(
        (r for r in matrix["kv_cache"] if kv_key and _row_matches(r, kv_key, target, rel)), None
    )
    if kv_row and kv_row["status"] == "unsupported":
        why = _row_said(kv_row, "error")
        errors.append(said("inspect.kv_dtype", dtype=kv_cache_dtype, why=why))
    elif kv_row and kv_row.get("note"):
        why = _row_said(kv_row, "note")
        notes.append(said("inspect.kv_dtype", dtype=kv_cache_dtype, why=why))
    verdict: Verdict = "SUPPORTED"
    arch_or_kv_blocked = arch_status == "unsupported" or (
        kv_row and kv_row["status"] == "unsupported"
    )
    if arch_or_kv_blocked:
        verdict = "UNSUPPORTED"
    elif status == "unsupported" or (status == "unknown" and quant.is_quantized):
        verdict = "NEEDS_CONVERSION" if routes else "UNSUPPORTED"
    return SupportReport(
        target=target,
        release=release,
        release_choice=choice,
        architecture=architecture,
        architecture_status=arch_status,
        scheme_key=key,
        quant_status=status,
        runs_as=runs_as,
        loads_as=row.get("loads_as") if row and status == "supported" else None,
        alternatives=list(row.get("alternatives", [])) if row and verdict == "SUPPORTED" else [],
        caveats=caveats,
        notes=notes,
        errors=errors,
        routes=routes if verdict == "NEEDS_CONVERSION" else [],
        sources=sorted(sources),
        verdict=verdict,
    )
