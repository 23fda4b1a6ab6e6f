"""`adaptgate doctor --host` on recorded outputs of npu-smi, hccn_tool and the CANN / driver version
files (tests/data/host, sources in its README): a healthy 8 x 910B3, a device missing, CANN too
old, a link down, HBM held by another process, an A3, and a host without npu-smi (SKIPPED,
never PASS)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from adaptgate.cli.doctor import command as doctor
from adaptgate.serve import host as host_module
from adaptgate.serve.host import HostOptions, HostReport, check_host, host_data
from adaptgate.serve.hostfacts import (
    Completed,
    driver_version,
    parse_link,
    parse_npu_smi,
    toolkit_version,
    version_key,
)

DATA = Path(__file__).parents[2] / "data"
HOST = DATA / "host"
TOOLKIT = "/usr/local/Ascend/ascend-toolkit/latest/aarch64-linux/ascend_toolkit_install.info"
DRIVER = "/usr/local/Ascend/driver/version.info"


class RecordedHost:
    """A HostProbe answering from tests/data/host; ``None`` for a file or command means absent."""

    def __init__(
        self,
        npu_smi: str | None = "npu-smi_910b3x8.txt",
        *,
        npu_smi_rc: int = 0,
        files: dict[str, str] | None = None,
        links: dict[int, str] | None = None,
        hccn: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.npu_smi, self.npu_smi_rc = npu_smi, npu_smi_rc
        default = {TOOLKIT: "toolkit_8.5.1.info", DRIVER: "driver_25.2.0.info"}
        self.files = default if files is None else files
        self.links, self.hccn, self.environ = links or {}, hccn, env or {}
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str]) -> Completed | None:
        self.calls.append(list(argv))
        if argv[0] == "npu-smi" and self.npu_smi is not None:
            return Completed(self.npu_smi_rc, (HOST / self.npu_smi).read_text())
        if argv[0] == "hccn_tool" and self.hccn:
            status = self.links.get(int(argv[2]), "up")
            return Completed(0, (HOST / f"hccn_link_{status}.txt").read_text())
        return None

    def read(self, path: str) -> str | None:
        name = self.files.get(path)
        return (HOST / name).read_text() if name else None

    def env(self, name: str) -> str | None:
        return self.environ.get(name)

    def machine(self) -> str:
        return "aarch64"


A2X8 = {"target": "ascend-a2", "device": "910b3", "devices": 8, "release": "0.18.0"}


def checks(report: HostReport) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


def by_id(report: HostReport, id_: str):  # type: ignore[no-untyped-def]
    return next(c for c in report.checks if c.id == id_)


# --- parsers ---------------------------------------------------------------------------------


def test_npu_smi_of_an_a2_lists_eight_910b3_with_their_hbm() -> None:
    smi = parse_npu_smi((HOST / "npu-smi_910b3x8.txt").read_text())
    assert smi.version == "25.2.0"
    assert [c.npu for c in smi.chips] == list(range(8))
    assert {c.name for c in smi.chips} == {"910B3"} and {c.health for c in smi.chips} == {"OK"}
    assert smi.chips[0].bus_id == "0000:C1:00.0"
    assert {(c.hbm_used_mib, c.hbm_total_mib, c.hbm_free_mib) for c in smi.chips} == {
        (3378, 65536, 62158)
    }
    assert smi.processes == []


def test_npu_smi_of_an_a3_lists_every_die_with_its_phy_id() -> None:
    smi = parse_npu_smi((HOST / "npu-smi_a3x16.txt").read_text())
    assert [c.device_id for c in smi.chips] == list(range(16))
    assert [(c.npu, c.chip) for c in smi.chips[:4]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert smi.chips[1].hbm_used_mib == 3189 and smi.chips[15].bus_id == "0000:83:00.0"


def test_npu_smi_process_table_and_unspaced_hbm_pair() -> None:
    smi = parse_npu_smi((HOST / "npu-smi_910b1_busy.txt").read_text())
    assert [(c.npu, c.hbm_used_mib) for c in smi.chips] == [(5, 59499), (7, 3422)]
    (proc,) = smi.processes
    assert (proc.npu, proc.chip, proc.pid, proc.name, proc.memory_mib) == (
        5, 0, 2865645, "VLLMEngineCor", 56131,
    )  # fmt: skip


def test_version_files_and_link_status() -> None:
    assert toolkit_version((HOST / "toolkit_8.2.RC1.info").read_text()) == "8.2.RC1"
    assert toolkit_version((HOST / "toolkit_version.cfg").read_text()) == "8.0.0"
    assert driver_version((HOST / "driver_24.1.rc2.2.info").read_text()) == "24.1.rc2.2"
    assert parse_link((HOST / "hccn_link_up.txt").read_text()) == "UP"
    assert parse_link((HOST / "hccn_link_down.txt").read_text()) == "DOWN"
    assert parse_link("hccn_tool: command failed") is None


# The release order of CANN and the HDK as their vendors publish them, oldest first.
ORDERED = [
    ["8.0.T63", "8.0.RC1", "8.0.RC3", "8.0.0", "8.1.RC1.alpha001", "8.1.RC1", "8.2.RC1",
     "8.3.RC2", "8.5.0", "8.5.1", "9.0.0", "9.1.0-beta.1", "9.1.0"],
    ["24.1.rc1", "24.1.rc2", "24.1.rc2.2", "24.1.0", "24.1.0.3", "25.0.rc1", "25.0.rc1.1",
     "25.2.0", "25.3.rc1", "25.5.0", "26.0.rc1"],
]  # fmt: skip


@pytest.mark.parametrize("versions", ORDERED)
def test_version_key_orders_releases_as_published(versions: list[str]) -> None:
    shuffled = versions[::2] + versions[1::2]
    assert sorted(shuffled, key=lambda v: version_key(v) or ()) == versions
    assert version_key("not-a-version") is None


def test_host_data_rows_have_sources_and_cover_the_named_releases() -> None:
    data = host_data()
    for name in ("0.11.0rc2", "0.18.0rc1", "0.18.0", "0.23.0", "0.26.0rc1"):
        row = data["releases"][name]
        assert version_key(row["cann"]) is not None
        assert all(s in data["sources"] for s in row["source"])
    assert data["releases"]["0.18.0rc1"]["cann"] == "8.5.1"  # seed 004: CANN >= 8.5.1


# --- the checks ------------------------------------------------------------------------------


def test_a_healthy_8x910b3_host_passes() -> None:
    probe = RecordedHost()
    report = check_host(HostOptions(**A2X8), probe)
    assert report.verdict == "PASS", report.summary()
    got = checks(report)
    for id_ in ("npu-smi", "device-count", "device-model", "health", "hbm-free", "cann"):
        assert got[id_] == "PASS", (id_, by_id(report, id_))
    assert got["hccn-links"] == "PASS"
    assert report.links == dict.fromkeys(range(8), "UP")
    # no sourced driver minimum for 0.18.0: recorded, not judged
    assert got["driver"] == "SKIPPED" and not by_id(report, "driver").blocking
    assert report.driver_version == "25.2.0" and report.cann_version == "8.5.1"
    assert ["hccn_tool", "-i", "7", "-link", "-g"] in probe.calls


def test_a_missing_device_fails_and_names_it() -> None:
    report = check_host(HostOptions(**A2X8), RecordedHost("npu-smi_910b3x7.txt"))
    assert report.verdict == "FAIL"
    count = by_id(report, "device-count")
    assert count.status == "FAIL" and "missing: 7" in count.found and count.fix
    assert "7 device(s)" in count.found
    # with 7 devices asked for, the same host passes
    ok = check_host(HostOptions(**{**A2X8, "devices": 7}), RecordedHost("npu-smi_910b3x7.txt"))
    assert checks(ok)["device-count"] == "PASS"


def test_cann_older_than_the_release_needs_fails() -> None:
    probe = RecordedHost(files={TOOLKIT: "toolkit_8.2.RC1.info", DRIVER: "driver_25.2.0.info"})
    report = check_host(HostOptions(**A2X8), probe)
    cann = by_id(report, "cann")
    assert report.verdict == "FAIL" and cann.status == "FAIL"
    assert "8.2.RC1" in cann.found and "8.5.1" in cann.needed and "8.5.1" in (cann.fix or "")
    assert cann.source and "versioning_policy" in cann.source
    # vllm-ascend 0.11.0rc2 accepts CANN >= 8.3.RC1: 8.2.RC1 still fails there
    old = check_host(HostOptions(**{**A2X8, "release": "0.11.0rc2"}), probe)
    assert checks(old)["cann"] == "FAIL"


def test_a_cann_other_than_the_validated_one_warns_and_so_does_an_older_driver() -> None:
    report = check_host(HostOptions(**{**A2X8, "release": "0.13.0"}), RecordedHost())
    assert checks(report)["cann"] == "WARN"  # 0.13.0 was validated with 8.5.0, host has 8.5.1
    driver = by_id(report, "driver")
    assert driver.status == "WARN" and "25.5" in driver.needed  # HDK 25.5 recommended
    assert report.verdict == "PASS"  # warnings do not block


def test_a_link_down_warns_on_one_node_and_fails_across_nodes() -> None:
    probe = RecordedHost(links={5: "down"})
    one = check_host(HostOptions(**A2X8), probe)
    link = by_id(one, "hccn-links")
    assert link.status == "WARN" and "device 5: DOWN" in link.found
    assert one.verdict == "PASS"
    # DeepSeek-V3 on 8 x 910B3 per node plans two nodes: HCCL crosses the RoCE links
    options = HostOptions(
        target="ascend-a2",
        config_path=DATA / "configs" / "DeepSeek-V3.json",
        device="910b3",
        devices=8,
        release="0.18.0",
    )
    two = check_host(options, RecordedHost(links={5: "down"}))
    assert two.needs.nodes == 2 and two.needs.devices == 8
    assert two.needs.plan_of and two.needs.layout
    assert by_id(two, "hccn-links").status == "FAIL" and two.verdict == "FAIL"


def test_hbm_held_by_another_process_fails_and_names_it() -> None:
    options = HostOptions(target="ascend-a2", device="910b1", devices=2, release="0.18.0")
    report = check_host(options, RecordedHost("npu-smi_910b1_busy.txt"))
    hbm = by_id(report, "hbm-free")
    assert hbm.status == "FAIL"
    assert "6037 of 65536 MiB free" in hbm.found and "pid 2865645 VLLMEngineCor" in hbm.found
    assert "at most 0.09" in (hbm.fix or "")  # 6037 / 65536 = 0.092
    # the runtime's logical ids are positions in npu-smi's list: 1 is NPU 7, which is free
    env = {"ASCEND_RT_VISIBLE_DEVICES": "1"}
    one = HostOptions(target="ascend-a2", device="910b1", devices=1, release="0.18.0")
    free = check_host(one, RecordedHost("npu-smi_910b1_busy.txt", env=env))
    assert checks(free)["hbm-free"] == "PASS" and free.visible_devices == [1]


def test_an_a3_host_lists_sixteen_dies() -> None:
    options = HostOptions(target="ascend-a3", devices=16, release="0.18.0")
    report = check_host(options, RecordedHost("npu-smi_a3x16.txt"))
    got = checks(report)
    assert got["device-count"] == got["device-model"] == got["hbm-free"] == "PASS"
    assert sorted(report.links) == list(range(16))


def test_the_wrong_device_profile_fails_the_model_check() -> None:
    options = HostOptions(**{**A2X8, "device": "910b4"})
    model = by_id(check_host(options, RecordedHost()), "device-model")
    assert model.status == "FAIL" and "910B3" in model.found and "910B4" in model.needed


def test_a_host_without_npu_smi_is_skipped_never_passed() -> None:
    report = check_host(HostOptions(**A2X8), RecordedHost(None, files={}, hccn=False))
    assert report.verdict == "SKIPPED"
    assert not any(c.status == "PASS" for c in report.checks)
    smi = by_id(report, "npu-smi")
    assert smi.status == "SKIPPED" and "not installed" in smi.found and smi.fix
    assert by_id(report, "cann").status == "SKIPPED"
    assert "not verified" in report.summary()


def test_npu_smi_failing_is_a_failure_with_its_message() -> None:
    report = check_host(HostOptions(**A2X8), RecordedHost("npu-smi_dcmi_failed.txt", npu_smi_rc=1))
    smi = by_id(report, "npu-smi")
    assert smi.status == "FAIL" and "dcmi module initialize failed" in smi.found
    assert report.verdict == "FAIL"


def test_an_unknown_release_leaves_cann_unverified() -> None:
    report = check_host(HostOptions(**{**A2X8, "release": "0.5.0"}), RecordedHost())
    cann = by_id(report, "cann")
    assert cann.status == "SKIPPED" and cann.blocking and "0.18.0" in (cann.fix or "")
    assert report.verdict == "SKIPPED"


def test_version_cfg_under_the_toolkit_home_is_the_fallback() -> None:
    home = "/opt/cann/latest"
    probe = RecordedHost(
        files={f"{home}/version.cfg": "toolkit_version.cfg", DRIVER: "driver_25.2.0.info"},
        env={"ASCEND_TOOLKIT_HOME": home},
    )
    report = check_host(HostOptions(**A2X8), probe)
    assert report.cann_version == "8.0.0" and report.cann_file == f"{home}/version.cfg"
    assert checks(report)["cann"] == "FAIL"  # 8.0.0 < 8.5.1


def test_needs_come_from_the_plan_of_a_config() -> None:
    options = HostOptions(
        target="ascend-a2", config_path=DATA / "configs" / "Qwen3-8B.json", device="910b3"
    )
    needs = check_host(options, RecordedHost()).needs
    assert needs.plan_of and needs.devices >= 1 and needs.nodes == 1
    assert needs.release and needs.utilization == pytest.approx(0.9)


def test_a_non_ascend_target_is_bad_input() -> None:
    from adaptgate.errors import UsageError

    with pytest.raises(UsageError, match="Ascend"):
        check_host(HostOptions(target="cuda"), RecordedHost())


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Makes the command's SystemProbe a RecordedHost built from ``recorded.kw``."""

    class Holder:
        kw: ClassVar[dict[str, Any]] = {}

    monkeypatch.setattr(host_module, "SystemProbe", lambda *_: RecordedHost(**Holder.kw))
    return Holder


def test_doctor_host_prints_json_first_and_exits_by_verdict(recorded) -> None:  # type: ignore[no-untyped-def]
    args = ["--host", "--target", "ascend-a2", "--device", "910b3", "--devices", "8"]
    result = CliRunner().invoke(doctor, [*args, "--release", "0.18.0", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["kind"] == "host-doctor" and doc["verdict"] == "PASS"
    recorded.kw = {"npu_smi": "npu-smi_910b3x7.txt"}
    failed = CliRunner().invoke(doctor, [*args, "--release", "0.18.0"])
    assert failed.exit_code == 1
    assert "FAIL" in failed.output and "missing: 7" in failed.output and "fix:" in failed.output
    recorded.kw = {"npu_smi": None, "files": {}, "hccn": False}
    skipped = CliRunner().invoke(doctor, [*args, "--release", "0.18.0"])
    assert skipped.exit_code == 1 and "not verified" in skipped.output


@pytest.mark.parametrize(
    "args",
    [[], ["x.log", "--host", "--target", "ascend-a2"], ["--host"]],
)
def test_doctor_usage_errors_are_one_line_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(doctor, args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "fix:" in result.output


def test_the_release_is_the_given_one_else_the_installed_else_the_plans_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adaptgate.inspect.releases import known_releases

    monkeypatch.setattr(host_module, "package_version", lambda name: None)
    bare = check_host(HostOptions(target="ascend-a2"), RecordedHost()).needs
    assert bare.release == known_releases("vllm-ascend")[-1].version
    assert bare.release_from == "the newest known release"
    monkeypatch.setattr(host_module, "package_version", lambda name: "0.23.0")
    installed = check_host(HostOptions(target="ascend-a2"), RecordedHost())
    assert installed.needs.release == "0.23.0"
    assert installed.needs.release_from == "the installed vllm-ascend"
    assert "9.1.0" in by_id(installed, "cann").needed  # vllm-ascend 0.23.0 needs CANN 9.1.0
    given = check_host(HostOptions(target="ascend-a2", release="0.18.0"), RecordedHost())
    assert given.needs.release == "0.18.0" and given.needs.release_from == "--release"
