"""``check_host(HostOptions) -> HostReport``: preflight of an Ascend host before a launch --
devices (count, model, health, free HBM) from ``npu-smi info``, the CANN toolkit and driver
versions against what the vllm-ascend release was validated with (host.yaml), and the RoCE links
``hccn_tool`` reports. The needs come from the launch plan (``build_plan``) when a model or
config is given, else from the options. A check that cannot run is SKIPPED with the reason,
never PASS; the verdict is FAIL on any failed check, SKIPPED when a check the launch depends on
could not run, else PASS."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from adaptgate.errors import InternalError, UsageError
from adaptgate.inspect.devices import MiB, device_profile
from adaptgate.results import Result, package_version
from adaptgate.serve.hostfacts import (
    HostProbe,
    NpuChip,
    NpuSmi,
    SystemProbe,
    driver_version,
    parse_link,
    parse_npu_smi,
    toolkit_version,
    version_key,
)
from adaptgate.serve.models import DEFAULT_DEVICE, PlanOptions

HOST_TARGETS = ("ascend-a2", "ascend-a3")
CheckStatus = Literal["PASS", "WARN", "FAIL", "SKIPPED"]


class HostOptions(BaseModel):
    """What ``adaptgate doctor --host`` checks the host for."""

    model_config = ConfigDict(frozen=True)

    target: str
    model: str | None = Field(None, description="checkpoint to plan from")
    config_path: Path | None = Field(None, description="config.json to plan from")
    device: str | None = None
    devices: int = Field(1, ge=1)
    release: str | None = Field(None, description="vllm-ascend release (default: installed)")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=16)


class HostNeeds(BaseModel):
    """What the launch needs from this host."""

    target: str
    device: str
    device_name: str
    npu_smi_name: str | None = Field(None, description="how npu-smi names the chip")
    devices: int = Field(description="devices the launch uses on this node")
    nodes: int = 1
    utilization: float = Field(description="--gpu-memory-utilization")
    device_memory_mib: int
    release: str | None
    release_from: str = Field(description="where the release came from")
    plan_of: str | None = Field(None, description="the model or config the plan was built for")
    layout: str | None = None


class HostCheck(BaseModel):
    id: str
    title: str
    status: CheckStatus
    found: str = Field(description="what the host has")
    needed: str = Field(description="what the launch needs")
    fix: str | None = None
    source: str | None = None
    blocking: bool = Field(True, description="a SKIPPED blocking check leaves the host unverified")


class HostReport(Result):
    kind: str = "host-doctor"
    needs: HostNeeds
    npu_smi: NpuSmi | None = None
    visible_devices: list[int] | None = Field(None, description="ASCEND_RT_VISIBLE_DEVICES")
    cann_version: str | None = None
    cann_file: str | None = None
    driver_version: str | None = None
    driver_file: str | None = None
    links: dict[int, str | None] = Field(default_factory=dict, description="device -> UP/DOWN")
    checks: list[HostCheck]
    verdict: Literal["PASS", "FAIL", "SKIPPED"]

    def summary(self) -> str:
        failed = [c.id for c in self.checks if c.status == "FAIL"]
        unverified = [c.id for c in self.checks if c.status == "SKIPPED" and c.blocking]
        if failed:
            return f"host FAILS for this launch: {', '.join(failed)}"
        if unverified:
            return f"host not verified: could not check {', '.join(unverified)}"
        return "host is ready for this launch"


@lru_cache(maxsize=1)
def host_data() -> dict[str, Any]:
    import yaml

    text = resources.files("adaptgate.serve").joinpath("host.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    for release, row in data["releases"].items():
        unknown = [s for s in row["source"] if s not in data["sources"]]
        if unknown or version_key(row["cann"]) is None:
            raise InternalError(f"host.yaml release {release}: {unknown or row['cann']}")
    return data


def _sources(keys: str | list[str]) -> str:
    data = host_data()
    return "; ".join(data["sources"][k] for k in ([keys] if isinstance(keys, str) else keys))


# --- what the launch needs -------------------------------------------------------------------


def host_needs(options: HostOptions) -> HostNeeds:
    if options.target not in HOST_TARGETS:
        raise UsageError(
            f"doctor --host checks Ascend hosts; --target {options.target} is not one",
            fix=f"use --target {' or '.join(HOST_TARGETS)}",
        )
    release, release_from = options.release, "--release"
    if release is None and (installed := package_version("vllm-ascend")):
        release, release_from = installed, "the installed vllm-ascend"
    devices = host_data()["devices"]
    if options.model or options.config_path:
        from adaptgate.serve.plan import build_plan

        plan = build_plan(
            PlanOptions.model_validate(
                {
                    "model": options.model,
                    "config_path": options.config_path,
                    "target": options.target,
                    "device": options.device,
                    "devices": options.devices,
                    "release": release,
                    "max_model_len": options.max_model_len,
                    "gpu_memory_utilization": options.gpu_memory_utilization,
                }
            )
        )
        profile = device_profile(plan.device)
        memory = plan.memory
        return HostNeeds(
            target=plan.target,
            device=plan.device,
            device_name=profile.name,
            npu_smi_name=devices.get(plan.device, {}).get("npu_smi_name"),
            devices=plan.layout.ranks // plan.layout.nodes,
            nodes=plan.layout.nodes,
            utilization=memory.utilization if memory else profile.default_utilization,
            device_memory_mib=(memory.device_memory_bytes if memory else profile.memory_bytes)
            // MiB,
            release=plan.release,
            release_from=release_from if release else "the plan's default release",
            plan_of=plan.model,
            layout=plan.layout.reason.text,
        )
    if release is None:
        release, release_from = _default_release(options.target), "the newest known release"
    device = (options.device or DEFAULT_DEVICE[options.target]).lower()
    profile = device_profile(device)
    return HostNeeds(
        target=options.target,
        device=device,
        device_name=profile.name,
        npu_smi_name=devices.get(device, {}).get("npu_smi_name"),
        devices=options.devices,
        utilization=options.gpu_memory_utilization or profile.default_utilization,
        device_memory_mib=profile.memory_bytes // MiB,
        release=release,
        release_from=release_from if release else "none given",
    )


def _default_release(target: str) -> str:
    """The release a plan for ``target`` assumes when none is given and none is installed."""
    from adaptgate.inspect.releases import resolve_release

    return resolve_release(target, None).release


# --- checks ----------------------------------------------------------------------------------


def _skipped(id_: str, title: str, why: str, needed: str, fix: str | None = None) -> HostCheck:
    return HostCheck(id=id_, title=title, status="SKIPPED", found=why, needed=needed, fix=fix)


def _ids(chips: list[NpuChip]) -> str:
    return ", ".join(str(c.device_id) for c in chips) or "none"


def _visible(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        return None


def _selected(smi: NpuSmi, visible: list[int] | None) -> list[NpuChip]:
    """The chips the runtime sees: ASCEND_RT_VISIBLE_DEVICES holds logical ids, the positions
    in npu-smi's list (in a container that shows NPU 5 and 7, those are 0 and 1)."""
    if visible is None:
        return list(smi.chips)
    return [smi.chips[i] for i in visible if 0 <= i < len(smi.chips)]


def _device_checks(smi: NpuSmi, needs: HostNeeds, visible: list[int] | None) -> list[HostCheck]:
    chips = _selected(smi, visible)
    used = chips[: needs.devices]
    where = f" (ASCEND_RT_VISIBLE_DEVICES={','.join(map(str, visible))})" if visible else ""
    need_n = f"{needs.devices} x {needs.device} on this node"
    count = HostCheck(
        id="device-count",
        title="devices",
        status="PASS" if len(chips) >= needs.devices else "FAIL",
        found=f"{len(chips)} device(s){where}: {_ids(chips)}",
        needed=need_n + (f" ({needs.layout})" if needs.layout else ""),
    )
    if count.status == "FAIL":
        listed = {c.device_id for c in smi.chips}
        if visible is None and 0 in listed:  # a whole host numbers its devices from 0
            missing = sorted(set(range(max(needs.devices, len(smi.chips)))) - listed)
            count.found += f"; missing: {', '.join(map(str, missing))}" if missing else ""
        count.fix = (
            "find why the device is gone (`npu-smi info -l`, `dmesg | grep -i davinci`) and "
            "recover it, or plan for the devices present (--devices)"
        )
    return [count, _model_check(used, needs), _health_check(used), _hbm_check(used, smi, needs)]


def _model_check(used: list[NpuChip], needs: HostNeeds) -> HostCheck:
    title, needed = "device model", f"{needs.device_name}, {needs.device_memory_mib} MiB each"
    if needs.npu_smi_name is None:
        return _skipped(
            "device-model", title, f"host.yaml records no npu-smi name for {needs.device}", needed
        )
    names = sorted({c.name for c in used})
    small = [
        c for c in used if c.hbm_total_mib is not None and c.hbm_total_mib < needs.device_memory_mib
    ]
    ok = names == [needs.npu_smi_name] and not small
    totals = sorted({c.hbm_total_mib for c in used if c.hbm_total_mib is not None})
    return HostCheck(
        id="device-model",
        title=title,
        status="PASS" if ok else "FAIL",
        found=f"{'/'.join(names) or '-'}, {'/'.join(map(str, totals)) or '?'} MiB HBM",
        needed=f"{needs.npu_smi_name} ({needed})",
        fix=None
        if ok
        else "plan for the device this host has (--device; see inspect --list-devices)",
        source=_sources(host_data()["devices"][needs.device]["source"]),
    )


def _health_check(used: list[NpuChip]) -> HostCheck:
    bad = [c for c in used if c.health.upper() != "OK"]
    return HostCheck(
        id="health",
        title="device health",
        status="FAIL" if bad else "PASS",
        found="; ".join(f"device {c.device_id}: {c.health}" for c in bad) or "OK on every device",
        needed="Health OK on the devices the launch uses",
        fix=(
            "read the alarm with `npu-smi info -t health -i <NPU id>` and clear it (driver "
            "log, reset), or keep the device out (ASCEND_RT_VISIBLE_DEVICES)"
        )
        if bad
        else None,
    )


def _hbm_check(used: list[NpuChip], smi: NpuSmi, needs: HostNeeds) -> HostCheck:
    title = "free HBM"
    needed = f"free >= {needs.utilization} x total on each device (--gpu-memory-utilization)"
    if any(c.hbm_free_mib is None for c in used):
        return _skipped("hbm-free", title, "npu-smi info shows no HBM-Usage column", needed)
    short = [c for c in used if (c.hbm_free_mib or 0) < needs.utilization * (c.hbm_total_mib or 0)]
    lines = []
    for c in short:
        holders = [p for p in smi.processes if (p.npu, p.chip) == (c.npu, c.chip)]
        held = "; ".join(f"pid {p.pid} {p.name} holds {p.memory_mib} MiB" for p in holders)
        lines.append(
            f"device {c.device_id}: {c.hbm_free_mib} of {c.hbm_total_mib} MiB free"
            + (f" ({held})" if held else "")
        )
    free = [(c.hbm_free_mib or 0) / (c.hbm_total_mib or 1) for c in used]
    fit = int(min(free) * 100) / 100 if free else 0.0
    return HostCheck(
        id="hbm-free",
        title=title,
        status="FAIL" if short else "PASS",
        found="; ".join(lines)
        or f"{min(c.hbm_free_mib or 0 for c in used) if used else 0} MiB free at least",
        needed=needed,
        fix=(
            "stop the processes holding HBM (npu-smi info lists them) or lower "
            f"--gpu-memory-utilization to at most {fit}"
        )
        if short
        else None,
        source=_sources("va-worker"),
    )


def _cann_check(probe: HostProbe, needs: HostNeeds) -> tuple[HostCheck, str | None, str | None]:
    data = host_data()
    homes = [h for h in (probe.env("ASCEND_TOOLKIT_HOME"), probe.env("ASCEND_HOME_PATH")) if h]
    homes += data["toolkit_homes"]
    arch = probe.machine()
    found = path = None
    for home in homes:
        for name in (f"{arch}-linux/ascend_toolkit_install.info", "version.cfg"):
            text = probe.read(f"{home.rstrip('/')}/{name}")
            if text and (found := toolkit_version(text)):
                path = f"{home.rstrip('/')}/{name}"
                break
        if found:
            break
    title = "CANN toolkit"
    row = data["releases"].get(needs.release or "")
    needed = (
        f"CANN {row['cann']} (vllm-ascend {needs.release}"
        + (f"; >= {row['cann_min']} accepted" if row.get("cann_min") else "")
        + ")"
        if row
        else f"the CANN vllm-ascend {needs.release or '?'} was validated with"
    )
    if found is None:
        return (
            _skipped(
                "cann",
                title,
                f"no CANN toolkit version file under {', '.join(homes)}",
                needed,
                fix="run doctor --host inside the serving container (the vllm-ascend image "
                "carries CANN), or source <toolkit>/set_env.sh so ASCEND_TOOLKIT_HOME is set",
            ),
            None,
            None,
        )
    if row is None:
        known = ", ".join(data["releases"])
        check = _skipped(
            "cann",
            title,
            f"CANN {found}; host.yaml holds no CANN requirement for vllm-ascend "
            f"{needs.release or '(no release given)'}",
            needed,
            fix=f"pass --release (known: {known}), or add the release's row to host.yaml "
            "from its installation guide",
        )
        return check, found, path
    have, stable = version_key(found), version_key(row["cann"])
    low = version_key(row.get("cann_min", row["cann"]))
    status: CheckStatus
    if have is None or stable is None or low is None:
        status, fix = "SKIPPED", f"cannot order the version {found!r}"
    elif have < low:
        status = "FAIL"
        fix = (
            f"install CANN {row['cann']} (toolkit, kernels/ops and NNAL), or use the "
            f"vllm-ascend {needs.release} image, which ships it"
        )
    elif have != stable:
        status = "WARN"
        fix = (
            f"vllm-ascend {needs.release} was validated with CANN {row['cann']}; "
            f"{found} is untested with it"
        )
    else:
        status, fix = "PASS", None
    check = HostCheck(
        id="cann",
        title=title,
        status=status,
        found=f"CANN {found} ({path})",
        needed=needed,
        fix=fix,
        source=_sources(row["source"]),
    )
    return check, found, path


def _driver_check(
    probe: HostProbe, smi: NpuSmi | None, needs: HostNeeds
) -> tuple[HostCheck, str | None, str | None]:
    path = host_data()["driver_version_file"]
    text = probe.read(path)
    version = driver_version(text) if text else None
    if version is None and smi is not None and smi.version:
        version, path = smi.version, "npu-smi info header"
    elif version is None:
        path = None
    row = host_data()["releases"].get(needs.release or "", {})
    want = row.get("hdk_recommended")
    title, needed = "driver (Ascend HDK)", f"HDK >= {want} recommended" if want else "-"
    if version is None:
        why = f"no {host_data()['driver_version_file']} and no npu-smi header"
        check = _skipped("driver", title, why, needed)
        check.blocking = False  # npu-smi answering proves the driver; its version is advice
        return check, None, None
    if want is None:
        why = (
            f"HDK {version}; vllm-ascend {needs.release or '?'} names no driver version (its "
            "guide defers to the CANN release notes)"
        )
        check = _skipped("driver", title, why, "-")
        check.blocking = False
        return check, version, path
    have, low = version_key(version), version_key(want)
    ok = have is not None and low is not None and have >= low
    check = HostCheck(
        id="driver",
        title=title,
        status="PASS" if ok else "WARN",
        found=f"HDK {version} ({path})",
        needed=needed,
        fix=None if ok else f"upgrade the driver and firmware to HDK {want} or later",
        source=_sources(row["source"]),
        blocking=False,
    )
    return check, version, path


def _link_check(
    probe: HostProbe, used: list[NpuChip], needs: HostNeeds
) -> tuple[HostCheck, dict[int, str | None]]:
    multi = needs.nodes > 1
    title = "RoCE links (hccn_tool)"
    needed = "link UP on every device" + (
        f" ({needs.nodes} nodes: HCCL crosses them)" if multi else " (one node: only for scale-out)"
    )
    links: dict[int, str | None] = {}
    if not used:
        check = _skipped("hccn-links", title, "no device to check", needed)
        check.blocking = multi
        return check, links
    for chip in used:
        done = probe.run(["hccn_tool", "-i", str(chip.device_id), "-link", "-g"])
        if done is None:
            check = _skipped(
                "hccn-links",
                title,
                "hccn_tool is not installed here (PATH, /usr/local/Ascend/driver/tools)",
                needed,
                fix="run on the NPU host, where the driver installs hccn_tool",
            )
            check.blocking = multi
            return check, links
        links[chip.device_id] = parse_link(done.stdout) if done.returncode == 0 else None
    down = [d for d, s in links.items() if s != "UP"]
    status: CheckStatus = "PASS" if not down else ("FAIL" if multi else "WARN")
    found = "; ".join(f"device {d}: {links[d] or 'no status'}" for d in down) or (
        f"UP on devices {', '.join(map(str, links))}"
    )
    return (
        HostCheck(
            id="hccn-links",
            title=title,
            status=status,
            found=found,
            needed=needed,
            fix="check the optics and switch port (`hccn_tool -i N -optical -g`, "
            "`hccn_tool -i N -lldp -g`) and /etc/hccn.conf"
            if down
            else None,
            source=_sources("va-docs-hccn"),
            blocking=multi,
        ),
        links,
    )


def check_host(options: HostOptions, probe: HostProbe | None = None) -> HostReport:
    needs = host_needs(options)
    probe = probe or SystemProbe(host_data()["commands"])
    checks: list[HostCheck] = []
    smi: NpuSmi | None = None
    done = probe.run(["npu-smi", "info"])
    title = "npu-smi info"
    if done is None:
        checks.append(
            _skipped(
                "npu-smi",
                title,
                "npu-smi is not installed here (PATH, /usr/local/sbin, /usr/local/bin)",
                "npu-smi info lists the devices",
                fix="run on the NPU host, or mount it into the container "
                "(-v /usr/local/bin/npu-smi:/usr/local/bin/npu-smi, as vllm-ascend's docs do)",
            )
        )
    else:
        smi = parse_npu_smi(done.stdout) if done.returncode == 0 else None
        first = (done.stdout.strip() or done.stderr.strip()).splitlines()
        ok = smi is not None and bool(smi.chips)
        checks.append(
            HostCheck(
                id="npu-smi",
                title=title,
                status="PASS" if ok else "FAIL",
                found=f"{len(smi.chips)} device(s), npu-smi {smi.version}"
                if ok and smi
                else f"exit {done.returncode}: {first[0] if first else 'no output'}",
                needed="npu-smi info lists the devices",
                fix=None
                if ok
                else "the driver does not answer: check the driver install "
                "(/usr/local/Ascend/driver) and that the container has /dev/davinci_manager, "
                "/dev/devmm_svm and /dev/hisi_hdc",
                source=_sources("seed-002"),
            )
        )
    visible = _visible(probe.env("ASCEND_RT_VISIBLE_DEVICES"))
    used: list[NpuChip] = []
    if smi is not None and smi.chips:
        checks += _device_checks(smi, needs, visible)
        used = _selected(smi, visible)[: needs.devices]
    else:
        why = "npu-smi info gave no device table"
        for id_, t in (("device-count", "devices"), ("device-model", "device model"),
                       ("health", "device health"), ("hbm-free", "free HBM")):  # fmt: skip
            checks.append(_skipped(id_, t, why, f"{needs.devices} x {needs.device}"))
    cann, cann_version, cann_file = _cann_check(probe, needs)
    driver, drv_version, drv_file = _driver_check(probe, smi, needs)
    links_check, links = _link_check(probe, used, needs)
    checks += [cann, driver, links_check]
    verdict: Literal["PASS", "FAIL", "SKIPPED"] = "PASS"
    if any(c.status == "FAIL" for c in checks):
        verdict = "FAIL"
    elif any(c.status == "SKIPPED" and c.blocking for c in checks):
        verdict = "SKIPPED"
    return HostReport(
        needs=needs,
        npu_smi=smi,
        visible_devices=visible,
        cann_version=cann_version,
        cann_file=cann_file,
        driver_version=drv_version,
        driver_file=drv_file,
        links=links,
        checks=checks,
        verdict=verdict,
    )
