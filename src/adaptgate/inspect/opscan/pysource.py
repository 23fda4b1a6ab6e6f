"""A static index of a Python source tree: modules by dotted name, what each imports, defines and
assigns, read with ``ast`` only. Nothing is imported: the trees scanned (vLLM, vllm-ascend, a
checkpoint's remote code) need torch, torch_npu or a GPU to import."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

Definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Symbol:
    """A class or function defined in a module of the tree."""

    module: str
    name: str
    node: Definition
    path: Path

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def is_class(self) -> bool:
        return isinstance(self.node, ast.ClassDef)


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    # local name -> dotted target ("vllm.model_executor.layers.layernorm.RMSNorm")
    imports: dict[str, str] = field(default_factory=dict)
    defs: dict[str, Definition] = field(default_factory=dict)
    # module-level `X = Y` (Y a name or dotted name), and `X = "text"`
    aliases: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` of a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def is_triton_kernel(node: Definition) -> bool:
    """``@triton.jit`` (also ``@jit`` from triton, and ``@triton.jit(...)``)."""
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = dotted(target) or ""
        if name == "jit" or name.endswith("triton.jit"):
            return True
    return False


@cache
def _parse(path: Path, mtime_ns: int) -> ast.Module | None:
    # keyed by mtime so an edited tree is read again; a file ast cannot read is skipped
    del mtime_ns
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return None


def parse_file(path: Path) -> ast.Module | None:
    return _parse(path, path.stat().st_mtime_ns)


class SourceTree:
    """Modules under ``root`` by dotted name (``root/vllm/x/y.py`` is ``vllm.x.y``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._modules: dict[str, Module | None] = {}

    def file_of(self, name: str) -> tuple[Path, bool] | None:
        base = self.root.joinpath(*name.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        return None

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            self._modules[name] = self._load(name)
        return self._modules[name]

    def relpath(self, path: Path, line: int) -> str:
        return f"{path.relative_to(self.root).as_posix()}:{line}"

    def where(self, symbol: Symbol) -> str:
        return self.relpath(symbol.path, symbol.node.lineno)

    def _load(self, name: str) -> Module | None:
        found = self.file_of(name)
        if found is None:
            return None
        path, is_package = found
        tree = parse_file(path)
        if tree is None:
            return None
        mod = Module(name=name, path=path, tree=tree, is_package=is_package)
        package = name if is_package else name.rpartition(".")[0]
        for node in tree.body:
            _index(mod, node, package)
        return mod

    def resolve(self, module: str, name: str, _seen: frozenset[str] = frozenset()) -> Symbol | None:
        """The class or function ``name`` means in ``module``: defined there, imported (also
        re-exported through a package ``__init__``) or aliased; a dotted ``name`` goes through
        an imported module (``layers.RMSNorm``)."""
        key = f"{module}:{name}"
        mod = self.module(module)
        if mod is None or key in _seen:
            return None
        seen = _seen | {key}
        head, _, rest = name.partition(".")
        if not rest and head in mod.defs:
            return Symbol(module, head, mod.defs[head], mod.path)
        target = mod.imports.get(head) or mod.aliases.get(head)
        if target is None:
            return None
        full = f"{target}.{rest}" if rest else target
        return self.resolve_dotted(full, seen)

    def resolve_dotted(self, full: str, _seen: frozenset[str] = frozenset()) -> Symbol | None:
        """``a.b.C`` -> the symbol C of module a.b (the longest prefix that is a module)."""
        parts = full.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if self.file_of(prefix) is not None:
                return self.resolve(prefix, ".".join(parts[cut:]), _seen)
        return None

    def constant(self, module: str, name: str) -> str | None:
        """A module-level string constant, followed through imports."""
        mod = self.module(module)
        if mod is None:
            return None
        if name in mod.constants:
            return mod.constants[name]
        target = mod.imports.get(name)
        if target and "." in target:
            owner, _, attr = target.rpartition(".")
            if owner != module:
                return self.constant(owner, attr)
        return None


def _index(mod: Module, node: ast.stmt, package: str) -> None:
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        mod.defs[node.name] = node
    elif isinstance(node, ast.Import):
        for alias in node.names:
            local = alias.asname or alias.name.split(".")[0]
            mod.imports[local] = alias.name if alias.asname else local
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, package)
        for alias in node.names:
            mod.imports[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
    elif isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                mod.constants[target.id] = node.value.value
            elif (source := dotted(node.value)) is not None:
                mod.aliases[target.id] = _through_imports(mod, source)
    elif isinstance(node, ast.If | ast.Try):
        # `if TYPE_CHECKING:` / `try: import x` blocks still name what the module uses
        for child in [*node.body, *getattr(node, "orelse", [])]:
            _index(mod, child, package)


def _through_imports(mod: Module, source: str) -> str:
    head, _, rest = source.partition(".")
    if head in mod.defs:
        return f"{mod.name}.{source}"
    target = mod.imports.get(head)
    if target is None:
        return f"{mod.name}.{source}"
    return f"{target}.{rest}" if rest else target


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
    return ".".join([*parts, *([node.module] if node.module else [])])
