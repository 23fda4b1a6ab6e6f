"""What a vllm-ascend tree provides, read statically: the custom ops it registers out of tree
(``REGISTERED_ASCEND_OPS`` dicts and ``register_oot`` calls), the vLLM classes and functions its
``patch/`` modules replace, its quantization methods and schemes, its Triton kernels, the models
it registers and its platform hooks. Each entry keeps its file:line and the ``if`` conditions it
sits under (an op registered only ``if vllm_version_is("0.23.0")`` is not registered for every
vLLM)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from adaptgate.inspect.opscan.pysource import Module, SourceTree, dotted, is_triton_kernel
from adaptgate.inspect.opscan.sources import Tree

# Only files with one of these are parsed (patch/ files always are).
_MARKERS = (
    "register_oot",
    "_OPS",
    "register_quantization_config",
    "register_scheme",
    "QUANTIZATION_METHOD_MAP",
    "register_model",
    "jit",
    "def get_attn_backend_cls",
)


@dataclass(frozen=True)
class Evidence:
    where: str
    what: str = ""
    conditions: tuple[str, ...] = ()

    def line(self) -> str:
        when = f" only when {' and '.join(self.conditions)}" if self.conditions else ""
        return f"{self.where}{f' ({self.what})' if self.what else ''}{when}"


@dataclass
class AscendIndex:
    tree: Tree
    ops: dict[str, list[Evidence]] = field(default_factory=dict)
    patches: dict[str, list[Evidence]] = field(default_factory=dict)
    quant_methods: dict[str, list[Evidence]] = field(default_factory=dict)
    schemes: dict[str, list[Evidence]] = field(default_factory=dict)
    kernels: dict[str, list[Evidence]] = field(default_factory=dict)
    models: dict[str, list[Evidence]] = field(default_factory=dict)
    hooks: dict[str, list[Evidence]] = field(default_factory=dict)


def index_ascend(tree: Tree) -> AscendIndex:
    index = AscendIndex(tree=tree)
    source = SourceTree(tree.root)
    for path in sorted(tree.package_dir.rglob("*.py")):
        rel = path.relative_to(tree.root)
        in_patch = rel.parts[1:2] == ("patch",)
        text = path.read_text(errors="replace")
        if not in_patch and not any(m in text for m in _MARKERS):
            continue
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        module = source.module(name)
        if module is None:
            continue
        _Reader(index, source, module, in_patch, registers="register_oot" in text).read()
    return index


def _walk(
    body: list[ast.stmt], conds: tuple[str, ...]
) -> Iterator[tuple[ast.stmt, tuple[str, ...]]]:
    """Every statement at any depth, with the ``if`` tests it sits under."""
    for stmt in body:
        yield stmt, conds
        if isinstance(stmt, ast.If):
            test = ast.unparse(stmt.test)
            yield from _walk(stmt.body, (*conds, test))
            yield from _walk(stmt.orelse, (*conds, f"not ({test})"))
            continue
        for attr in ("body", "orelse", "finalbody"):
            yield from _walk(getattr(stmt, attr, None) or [], conds)
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _walk(handler.body, conds)


def _ops_name(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id.endswith("_OPS")


class _Reader:
    def __init__(
        self,
        index: AscendIndex,
        source: SourceTree,
        module: Module,
        in_patch: bool,
        registers: bool,
    ) -> None:
        self.index, self.source, self.module = index, source, module
        self.in_patch, self.registers = in_patch, registers

    def _add(self, table: dict[str, list[Evidence]], key: str, node: ast.AST, **kw: object) -> None:
        where = self.source.relpath(self.module.path, getattr(node, "lineno", 0))
        table.setdefault(key, []).append(Evidence(where=where, **kw))  # type: ignore[arg-type]

    def read(self) -> None:
        for stmt, conds in _walk(self.module.tree.body, ()):
            if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                self._definition(stmt, conds)
            elif isinstance(stmt, ast.Assign):
                self._assign(stmt, conds)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                self._call(stmt.value, conds)

    def _definition(
        self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, conds: tuple[str, ...]
    ) -> None:
        if not isinstance(node, ast.ClassDef):
            if is_triton_kernel(node):
                self._add(self.index.kernels, node.name, node, conditions=conds)
            if node.name == "get_attn_backend_cls":
                self._add(self.index.hooks, node.name, node, conditions=conds)
            return
        for deco in node.decorator_list:
            func = deco.func if isinstance(deco, ast.Call) else deco
            name = (dotted(func) or "").split(".")[-1]
            args = deco.args if isinstance(deco, ast.Call) else []
            first = self._string(args[0]) if args else None
            if name == "register_oot":
                key = _keyword(deco, "name") or node.name
                self._add(self.index.ops, key, node, what=node.name, conditions=conds)
            elif name == "register_quantization_config" and first:
                self._add(self.index.quant_methods, first, node, what=node.name, conditions=conds)
            elif name == "register_scheme" and first:
                kind = self._string(args[1]) if len(args) > 1 else None
                what = f"{node.name} ({kind})"
                self._add(self.index.schemes, first, node, what=what, conditions=conds)

    def _assign(self, node: ast.Assign, conds: tuple[str, ...]) -> None:
        for target in node.targets:
            if self.registers and _ops_name(target) and isinstance(node.value, ast.Dict):
                self._dict_keys(self.index.ops, node.value, conds)
            elif (
                self.registers
                and isinstance(target, ast.Subscript)
                and _ops_name(target.value)
                and (key := self._string(target.slice))
            ):
                self._add(self.index.ops, key, node, what=ast.unparse(node.value), conditions=conds)
            elif (
                isinstance(target, ast.Name)
                and target.id.endswith("QUANTIZATION_METHOD_MAP")
                and isinstance(node.value, ast.Dict)
            ):
                self._dict_keys(self.index.schemes, node.value, conds)
            elif self.in_patch and isinstance(target, ast.Attribute):
                self._patch(target, node, conds)

    def _call(self, call: ast.Call, conds: tuple[str, ...]) -> None:
        func = dotted(call.func) or ""
        updates_ops = isinstance(call.func, ast.Attribute) and _ops_name(call.func.value)
        if func.endswith(".update") and self.registers and updates_ops:
            for arg in call.args:
                if isinstance(arg, ast.Dict):
                    self._dict_keys(self.index.ops, arg, conds)
        elif func.endswith("register_model") and call.args and (arch := self._string(call.args[0])):
            self._add(self.index.models, arch, call, conditions=conds)
        elif func.endswith(".register_oot") and (key := self._string(_keyword_node(call, "name"))):
            self._add(self.index.ops, key, call, conditions=conds)

    def _dict_keys(
        self, table: dict[str, list[Evidence]], node: ast.Dict, conds: tuple[str, ...]
    ) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if key is not None and (name := self._string(key)):
                self._add(table, name, key, what=_short(value), conditions=conds)

    def _patch(self, target: ast.Attribute, node: ast.Assign, conds: tuple[str, ...]) -> None:
        """``Cls.method = ...`` patches Cls; ``vllm.a.b.func = ...`` replaces func."""
        name = dotted(target)
        if name is None:
            return
        head, _, rest = name.partition(".")
        base = self.module.imports.get(head) or self.module.aliases.get(head)
        if base is None or not base.startswith("vllm."):
            if head != "vllm" or self.module.imports.get("vllm") != "vllm":
                return
            base = "vllm"
        full = f"{base}.{rest}"
        parts = full.split(".")
        method_of_class = len(parts) > 1 and parts[-2][:1].isupper() and not parts[-1][:1].isupper()
        key = parts[-2] if method_of_class else parts[-1]
        self._add(self.index.patches, key, node, what=full, conditions=conds)

    def _string(self, node: ast.expr | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.source.constant(self.module.name, node.id)
        return None


def _keyword_node(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _keyword(deco: ast.expr, name: str) -> str | None:
    node = _keyword_node(deco, name) if isinstance(deco, ast.Call) else None
    return str(node.value) if isinstance(node, ast.Constant) else None


def _short(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
