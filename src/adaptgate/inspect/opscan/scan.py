"""``scan_operators``: the operators an architecture's code uses (vLLM's registered model class,
or the checkpoint's ``trust_remote_code`` module) checked against what a vllm-ascend tree
registers or patches. What nothing in that tree matches "needs verification (Stage A)"; without
a vllm-ascend tree every row is "not checked", never "supported"."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from adaptgate.checkpoint import load_json_file
from adaptgate.errors import UsageError
from adaptgate.formats.ascend import DESCRIPTION_FILE
from adaptgate.inspect.opscan.ascend import AscendIndex, Evidence, index_ascend
from adaptgate.inspect.opscan.models import FoundOp, OperatorScan, ScanRow
from adaptgate.inspect.opscan.pysource import SourceTree
from adaptgate.inspect.opscan.sources import Tree, locate
from adaptgate.inspect.opscan.walk import Walker

REGISTRY = "vllm.model_executor.models.registry"
MODELS = "vllm.model_executor.models"
# torch.nn names remote code calls that hold or group layers rather than compute
_CONTAINERS = frozenset({"Parameter", "ModuleList", "ModuleDict", "Sequential", "ParameterList"})
SCHEME = "ModelSlim scheme"
NO_ASCEND = "not checked: no vllm-ascend source (pass --vllm-ascend-src)"


def registry_entry(tree: SourceTree, architecture: str) -> tuple[str, str] | None:
    """(module, class) vLLM's registry maps ``architecture`` to, read from registry.py's
    module-level dicts of ``"Arch": ("module", "Class")``."""
    mod = tree.module(REGISTRY)
    for node in mod.tree.body if mod else []:
        value = getattr(node, "value", None)
        if not isinstance(node, ast.Assign | ast.AnnAssign) or not isinstance(value, ast.Dict):
            continue
        for key, entry in zip(value.keys, value.values, strict=True):
            if not (isinstance(key, ast.Constant) and key.value == architecture):
                continue
            if isinstance(entry, ast.Tuple) and len(entry.elts) == 2:
                module, cls = (getattr(e, "value", None) for e in entry.elts)
                if isinstance(module, str) and isinstance(cls, str):
                    full = module if module.startswith("vllm.") else f"{MODELS}.{module}"
                    return full, cls
    return None


def scan_operators(
    architecture: str,
    *,
    model_dir: Path | None = None,
    config: dict[str, Any] | None = None,
    quant_types: list[str] | None = None,
    vllm_src: Path | None = None,
    vllm_ascend_src: Path | None = None,
) -> OperatorScan:
    """Scan ``architecture``; ``config`` (config.json) names the checkpoint's quantization
    method and its ``auto_map``; ``quant_types`` are the schemes of a ModelSlim description."""
    vllm = locate("vllm", vllm_src, "--vllm-src")
    ascend = locate("vllm_ascend", vllm_ascend_src, "--vllm-ascend-src")
    scan = OperatorScan(
        architecture=architecture,
        vllm_src=str(vllm.package_dir) if vllm else None,
        vllm_version=vllm.version if vllm else None,
        vllm_ascend_src=str(ascend.package_dir) if ascend else None,
        vllm_ascend_release=ascend.version if ascend else None,
        vllm_ascend_release_from=ascend.version_from if ascend else None,
    )
    found = _found_ops(scan, vllm, model_dir, config or {})
    seen = {(op.kind, op.op) for op in found}
    found += [q for q in _quant_ops(config or {}, quant_types or []) if (q.kind, q.op) not in seen]
    index = index_ascend(ascend) if ascend else None
    if index is not None and (own := index.models.get(architecture)):
        scan.notes.append(f"vllm-ascend registers its own {architecture}: {own[0].line()}")
    if index is not None and ascend and ascend.version is None:
        scan.notes.append(
            "the vllm-ascend tree's release is unknown (no _version.py, metadata or tag)"
        )
    paired = _minor(scan.vllm_ascend_release)
    if paired and _minor(scan.vllm_version) and _minor(scan.vllm_version) != paired:
        scan.notes.append(
            f"vLLM {scan.vllm_version} scanned against vllm-ascend {scan.vllm_ascend_release}: "
            "each vllm-ascend release pairs with its own vLLM; pass --vllm-src for that one"
        )
    schemes = any(op.detail == SCHEME for op in found)
    scan.rows = [_check(op, index, scan.remote_code, schemes) for op in found]
    return scan


def _found_ops(
    scan: OperatorScan, vllm: Tree | None, model_dir: Path | None, config: dict[str, Any]
) -> list[FoundOp]:
    entry = None
    tree = SourceTree(vllm.root) if vllm else None
    if tree is not None:
        entry = registry_entry(tree, scan.architecture)
    if entry is not None and tree is not None:
        module, cls = entry
        symbol = tree.resolve(module, cls)
        if symbol is None:
            scan.notes.append(
                f"vLLM's registry maps {scan.architecture} to {module}.{cls}, not found"
            )
            return []
        scan.model_class, scan.model_source = symbol.qualname, tree.where(symbol)
        walker = Walker(tree, model_prefixes=(MODELS,))
        walker.walk(symbol)
        return list(walker.found.values())
    remote = _remote_code(scan, config, model_dir)
    if remote is not None:
        return remote
    where = "no vLLM source (pass --vllm-src)" if vllm is None else "not in vLLM's registry"
    scan.notes.append(f"{scan.architecture}: {where}, and no auto_map module to scan")
    return []


def _remote_code(
    scan: OperatorScan, config: dict[str, Any], model_dir: Path | None
) -> list[FoundOp] | None:
    """The checkpoint's own modeling file (``auto_map``), scanned like a vLLM model module."""
    auto_map = config.get("auto_map") or {}
    ref = auto_map.get("AutoModelForCausalLM") or next(iter(auto_map.values()), None)
    if model_dir is None or not isinstance(ref, str) or "." not in ref:
        return None
    module, _, cls = ref.split("--")[-1].rpartition(".")
    tree = SourceTree(model_dir)
    symbol = tree.resolve(module, cls)
    if symbol is None:
        scan.notes.append(f"auto_map names {ref}, not found in {model_dir}")
        return []
    scan.remote_code = True
    scan.model_class, scan.model_source = symbol.qualname, tree.where(symbol)
    walker = Walker(tree, model_prefixes=(module,))
    walker.walk(symbol)
    own = [
        FoundOp(
            op=cls.name,
            kind="layer",
            defined_at=tree.where(cls),
            detail="nn.Module in the checkpoint's code",
            used_by=symbol.name,
        )
        for cls in walker.walked
        if cls.qualname != symbol.qualname
    ]
    return list(walker.found.values()) + own + _torch_layers(tree, module, symbol.name)


def _torch_layers(tree: SourceTree, module: str, owner: str) -> list[FoundOp]:
    """The ``nn.*`` layer types remote code builds (vLLM can replace none of them)."""
    mod = tree.module(module)
    if mod is None:
        return []
    seen: dict[str, FoundOp] = {}
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner_name = getattr(node.func.value, "id", None)
            attr = node.func.attr
            if owner_name == "nn" and attr[:1].isupper() and attr not in _CONTAINERS | set(seen):
                seen[node.func.attr] = FoundOp(
                    op=f"nn.{node.func.attr}",
                    kind="layer",
                    defined_at=tree.relpath(mod.path, node.lineno),
                    detail="torch.nn layer in the checkpoint's code",
                    used_by=owner,
                )
    return list(seen.values())


def _quant_ops(config: dict[str, Any], quant_types: list[str]) -> list[FoundOp]:
    qc = config.get("quantization_config") or {}
    ops = []
    if method := qc.get("quant_method"):
        ops.append(
            FoundOp(op=str(method), kind="quant", defined_at="config.json quantization_config")
        )
    ops += [
        FoundOp(
            op=t, kind="quant", defined_at="quant_model_description.json", detail="ModelSlim scheme"
        )
        for t in sorted(set(quant_types) - {"FLOAT"})
    ]
    return ops


def _check(op: FoundOp, index: AscendIndex | None, remote: bool, schemes: bool) -> ScanRow:
    if index is None:
        return ScanRow(**op.model_dump(), status="not checked", evidence=NO_ASCEND)
    release = index.tree.version or "(release unknown)"
    found = _evidence(op, index)
    unconditional = [e for e in found if not e.conditions]
    if unconditional and op.kind == "quant" and op.detail != SCHEME and not schemes:
        # a registered method may cover only some layer kinds (v0.23.0's fp8 config has
        # schemes for DeepSeek-V4 layers only): without per-layer schemes, Stage A decides
        why = f"Stage A: registered at {_lines(unconditional)}; which layers its schemes cover"
        return ScanRow(
            **op.model_dump(), status="needs verification", evidence=why + " is not read"
        )
    if unconditional:
        return ScanRow(**op.model_dump(), status="supported", evidence=_lines(unconditional))
    if found:
        why = f"Stage A: vllm-ascend {release} provides it only conditionally: {_lines(found)}"
        return ScanRow(**op.model_dump(), status="needs verification", evidence=why)
    return ScanRow(
        **op.model_dump(), status="needs verification", evidence=_missing(op, release, remote)
    )


def _evidence(op: FoundOp, index: AscendIndex) -> list[Evidence]:
    if op.kind == "quant":
        return index.quant_methods.get(op.op, []) + index.schemes.get(op.op, [])
    if op.kind == "triton":
        return index.kernels.get(op.op, []) + index.patches.get(op.op, [])
    hooks = [
        Evidence(e.where, "attention backend: the platform's get_attn_backend_cls", e.conditions)
        for e in index.hooks.get("get_attn_backend_cls", [])
    ]
    return index.ops.get(op.op, []) + index.patches.get(op.op, []) + (hooks if op.attention else [])


def _missing(op: FoundOp, release: str, remote: bool) -> str:
    what = {
        "quant": "no quantization method or scheme of that name",
        "triton": "no Triton kernel of that name and no patch replacing it",
        "custom op": "no register_oot and no patch, so vLLM's own implementation runs",
        "layer": "no register_oot and no patch",
    }[op.kind]
    code = " in the checkpoint's trust_remote_code module" if remote else ""
    return f"Stage A: vllm-ascend {release}: {what}{code}"


def _lines(found: list[Evidence]) -> str:
    return "; ".join(e.line() for e in found[:3]) + (
        f" (+{len(found) - 3})" if len(found) > 3 else ""
    )


def _minor(version: str | None) -> str | None:
    return ".".join(version.removeprefix("v").split(".")[:2]) if version else None


def scan_model(
    model: str, *, vllm_src: Path | None = None, vllm_ascend_src: Path | None = None
) -> OperatorScan:
    """``adaptgate operators MODEL``: MODEL is a checkpoint directory, a config.json or an
    architecture name (``Qwen3ForCausalLM``)."""
    path = Path(model).expanduser()
    config: dict[str, Any] = {}
    model_dir = None
    if path.is_dir() and (path / "config.json").is_file():
        model_dir, config = path, load_json_file(path / "config.json", "config.json")
    elif path.is_file():
        model_dir, config = path.parent, load_json_file(path, "config.json")
    elif "/" in model or model.endswith(".json"):
        raise UsageError(
            f"{model}: no such checkpoint or config.json",
            fix="give a checkpoint directory, its config.json or an architecture name",
        )
    architectures = config.get("architectures") or [model]
    desc_path = model_dir / DESCRIPTION_FILE if model_dir else None
    desc = (
        load_json_file(desc_path, DESCRIPTION_FILE) if desc_path and desc_path.is_file() else None
    )
    return scan_operators(
        str(architectures[0]),
        model_dir=model_dir,
        config=config,
        quant_types=description_schemes(desc),
        vllm_src=vllm_src,
        vllm_ascend_src=vllm_ascend_src,
    )


def description_schemes(desc: dict[str, Any] | None) -> list[str]:
    """The scheme names a ModelSlim quant_model_description.json uses (W8A8_DYNAMIC, ...)."""
    return [str(v) for v in (desc or {}).values() if isinstance(v, str) and v.isupper()]
