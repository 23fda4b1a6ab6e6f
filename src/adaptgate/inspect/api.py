"""``inspect_model(options) -> InspectResult``: the one call the CLI and the pipeline use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from adaptgate.errors import UsageError
from adaptgate.formats.detect import QuantScheme, TensorLike, detect_quantization
from adaptgate.inspect.devices import DeviceProfile, device_profile
from adaptgate.inspect.facts import ArchFacts, read_facts
from adaptgate.inspect.formula import count_from_config
from adaptgate.inspect.kvcache import KV_DTYPE_BYTES, kv_facts
from adaptgate.inspect.lint import lint_checkpoint
from adaptgate.inspect.memory import plan_route
from adaptgate.inspect.models import InspectOptions, InspectResult, ParamsCheck, RouteOption
from adaptgate.inspect.opscan import OperatorScan, scan_operators
from adaptgate.inspect.opscan.scan import description_schemes
from adaptgate.inspect.params import ParamCounts, count_from_headers
from adaptgate.inspect.support import SupportReport, check_support, host_cpu_flags
from adaptgate.inspect.weights import ROUTE_TITLES, weight_bytes
from adaptgate.messages import Said, joined, said

DESCRIPTION_FILE = "quant_model_description.json"
_ROUTE_ORDER = ("native", "bf16", "w8a8_dynamic")


class CheckpointLike(Protocol):
    """What inspect reads of ``adaptgate.checkpoint.Checkpoint``."""

    @property
    def root(self) -> Path: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def quant_description(self) -> dict[str, Any] | None: ...
    @property
    def tensors(self) -> Mapping[str, TensorLike]: ...


def _read_json(path: Path, what: str) -> dict[str, Any]:
    from adaptgate.checkpoint import load_json_file

    return load_json_file(path, what)


def _load(options: InspectOptions, ckpt: CheckpointLike | None) -> tuple[Any, ...]:
    if ckpt is not None:
        return ckpt.config, ckpt.tensors, ckpt.quant_description, "checkpoint", ckpt.root
    if options.config_path is not None:
        path = Path(options.config_path)
        path = path / "config.json" if path.is_dir() else path
        config = _read_json(path, "config")
        desc_path = path.parent / DESCRIPTION_FILE
        desc = _read_json(desc_path, "quant description") if desc_path.is_file() else None
        return config, None, desc, "config", path.parent
    if options.model is None:
        raise UsageError("no model given", fix="pass MODEL, or --config config.json")
    from adaptgate.checkpoint import open_checkpoint

    opened = open_checkpoint(options.model, allow_pickle=options.allow_pickle)
    return opened.config, opened.tensors, opened.quant_description, "checkpoint", opened.root


def _cpu_flags(options: InspectOptions) -> frozenset[str] | None:
    return options.cpu_flags if options.cpu_flags is not None else host_cpu_flags()


def _resolve_target(options: InspectOptions) -> tuple[str | None, DeviceProfile | None]:
    profile = device_profile(options.device, options.cpu_memory_gib) if options.device else None
    target = options.target or (profile.platform if profile else None)
    if profile and target != profile.platform:
        raise UsageError(
            f"device {profile.id} is {profile.platform}, not target {target}",
            fix=f"drop --target or use --target {profile.platform}",
        )
    return target, profile


def _why(best: RouteOption, fitting: list[RouteOption]) -> Said:
    if best.route == "w8a8_dynamic" and len(fitting) == 1:
        return said("inspect.why_w8a8_only")
    if best.route == "native" and best.loads_as:
        return said("inspect.why_loads_as", dtype=best.loads_as)
    return said(f"inspect.why_{best.route}")


def _recommend(routes: list[RouteOption], planned: bool) -> tuple[str | None, Said | None]:
    if not routes:
        return None, None
    if not planned:
        first = routes[0]
        return first.route, said("inspect.route_unplanned", title=first.title)
    fitting = [r for r in routes if r.plan and r.plan.best]
    if not fitting:
        return None, said("inspect.no_route_fits")
    best = min(fitting, key=lambda r: (r.plan.best.devices, _ROUTE_ORDER.index(r.route)))  # type: ignore[union-attr]
    devices = best.plan.best.devices  # type: ignore[union-attr]
    why = _why(best, fitting)
    return best.route, said("inspect.route_fits", title=best.title, devices=devices, why=why)


def _route_names(support: SupportReport | None) -> list[str]:
    if support is None:
        return ["native"]
    if support.verdict == "SUPPORTED":
        return ["native", *support.alternatives]
    return support.routes if support.verdict == "NEEDS_CONVERSION" else []


def _route_option(
    name: str, counts: ParamCounts, quant: QuantScheme, facts: ArchFacts, loads_as: str | None
) -> tuple[RouteOption, dict[str, int]]:
    """A route's weight bytes by category: a native checkpoint the engine loads as another
    dtype (``loads_as``) takes that dtype's memory and is read at its stored size."""
    stored = weight_bytes(name, counts, quant, facts)
    if name != "native" or loads_as is None:
        option = RouteOption(
            route=name, title=ROUTE_TITLES[name], weight_bytes=sum(stored.values())
        )
        return option, stored
    held = weight_bytes(loads_as, counts, quant, facts)
    option = RouteOption(
        route=name,
        title=said("inspect.title_native_loads_as", dtype=loads_as.upper()),
        weight_bytes=sum(held.values()),
        file_bytes=sum(stored.values()),
        loads_as=loads_as,
    )
    return option, held


def inspect_model(
    options: InspectOptions, checkpoint: CheckpointLike | None = None
) -> InspectResult:
    """Facts, counts, quantization, KV cache, memory plan, support and route for one model."""
    config, tensors, desc, mode, root = _load(options, checkpoint)
    findings = lint_checkpoint(Path(root), config, tensors)
    facts = read_facts(config)
    quant = detect_quantization(config, tensors, desc)
    computed = count_from_config(facts)
    params = count_from_headers(tensors, facts) if tensors else None
    check = None
    # the detector's and lint's findings are English lines, quoted as written
    warnings = [
        Said(text=f"quantization: {d.message} ({d.count}, e.g. {', '.join(d.examples)})")
        for d in quant.disagreements
    ]
    if params:
        diff = 100.0 * (params.total - computed.total) / max(1, computed.total)
        check = ParamsCheck(
            headers_total=params.total,
            computed_total=computed.total,
            diff_pct=diff,
            headers_mtp=params.mtp,
            computed_mtp=computed.mtp,
        )
        if abs(diff) > 0.5:
            warnings.append(said("inspect.header_count_differs", diff=f"{diff:+.2f}"))
    target, profile = _resolve_target(options)
    support = None
    if target:
        support = check_support(
            target,
            options.release,
            facts.architecture,
            quant,
            kv_cache_dtype=options.kv_cache_dtype,
            compute_capability=profile.compute_capability if profile else None,
            cpu_flags=_cpu_flags(options) if target == "cpu" else None,
        )
    names = _route_names(support)
    counts = params or computed
    kv_bytes = KV_DTYPE_BYTES.get(options.kv_cache_dtype, 4 if facts.dtype == "float32" else 2)
    util = options.gpu_memory_utilization or (profile.default_utilization if profile else None)
    routes = []
    for name in names:
        option, by_cat = _route_option(
            name, counts, quant, facts, support.loads_as if support else None
        )
        if profile and util:
            option.plan = plan_route(
                name,
                facts,
                by_cat,
                profile,
                options.devices,
                utilization=util,
                kv_dtype_bytes=kv_bytes,
                max_model_len=options.max_model_len,
                mtp=options.speculative_mtp,
            )
        routes.append(option)
    recommended, why = _recommend(routes, profile is not None)
    verdict, reason = _verdict(target, support, routes, recommended, why)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        # lint's findings are English lines (lint.py), quoted as they are
        verdict, reason = (
            "FAIL",
            Said(text="checkpoint lint: " + "; ".join(f.line() for f in errors)),
        )
    return InspectResult(
        mode=mode,
        model=options.model,
        config_path=str(options.config_path) if options.config_path else None,
        facts=facts,
        params=params,
        params_computed=computed,
        params_check=check,
        quant=quant,
        kv_cache=kv_facts(facts, options.devices),
        kv_cache_dtype=options.kv_cache_dtype,
        device=profile,
        devices=options.devices,
        utilization=util,
        max_model_len=options.max_model_len,
        support=support,
        release=support.release_choice if support else None,
        routes=routes,
        recommended=recommended,
        recommendation=why,
        verdict=verdict,
        reason=reason,
        warnings=warnings
        + [Said(text=f.line()) for f in findings if f.severity == "warning"]
        + (support.notes + support.caveats if support else []),
        findings=findings,
        operator_scan=_operator_scan(options, target, facts.architecture, config, desc, root),
    )


def _operator_scan(
    options: InspectOptions,
    target: str | None,
    architecture: str | None,
    config: dict[str, Any],
    desc: dict[str, Any] | None,
    root: str | Path,
) -> OperatorScan | None:
    """The operator gate, for Ascend targets or when a vllm-ascend tree is given."""
    if architecture is None:
        return None
    if not (target or "").startswith("ascend") and options.vllm_ascend_src is None:
        return None
    return scan_operators(
        architecture,
        model_dir=Path(root),
        config=config,
        quant_types=description_schemes(desc),
        vllm_src=options.vllm_src,
        vllm_ascend_src=options.vllm_ascend_src,
    )


def _verdict(
    target: str | None,
    support: SupportReport | None,
    routes: list[RouteOption],
    recommended: str | None,
    why: Said | None,
) -> tuple[Literal["PASS", "FAIL"], Said]:
    if target is None or support is None:
        return "PASS", said("inspect.facts_only")
    if support.verdict == "UNSUPPORTED":
        return "FAIL", joined(support.errors) if support.errors else said("inspect.unsupported")
    if recommended is None:
        plans = [
            said("inspect.route_plan", route=r.route, plan=r.plan.summary) for r in routes if r.plan
        ]
        return "FAIL", said("inspect.nothing_fits", plans=joined(plans) if plans else "")
    verdict = "supported" if support.verdict == "SUPPORTED" else "needs_conversion"
    return "PASS", said(
        f"inspect.{verdict}", target=target, release=support.release, route=recommended, why=why
    )
