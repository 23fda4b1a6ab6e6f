"""What a model's code reaches, statically: from the model class, the classes it references
(its bases, the layers it builds, the model classes those build), the layer types among them
(``vllm.model_executor.layers``), which of those are ``CustomOp`` / ``PluggableLayer``
subclasses (vllm-ascend replaces those by class name), the Triton kernels and the quantization
modules on the way. Factory functions (``get_rope``) count as the class their return annotation
names."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from adaptgate.inspect.opscan.models import FoundOp, OpKind
from adaptgate.inspect.opscan.pysource import SourceTree, Symbol, dotted, is_triton_kernel

LAYERS = "vllm.model_executor.layers"
QUANTIZATION = f"{LAYERS}.quantization"
# The classes an out-of-tree platform replaces by class name (vllm/model_executor/custom_op.py).
REPLACEABLE = ("CustomOp", "PluggableLayer")
# Attention layers (and their subclasses) run the platform's attention backend, not a custom op.
ATTENTION_LAYERS = frozenset({"Attention", "MLAAttention"})
# Layers are followed this many classes deep for the custom ops they build (FusedMoE's runner).
LAYER_DEPTH = 2


def _references(node: ast.AST) -> Iterator[str]:
    """Whole dotted names a class or function body uses as values (``RMSNorm``,
    ``layers.RMSNorm``; ``Base.__init__`` resolves to no class), leaving out annotations and
    the classes isinstance/issubclass test and a class's bases."""
    skip: set[int] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.arg | ast.AnnAssign) and child.annotation is not None:
            skip.update(id(n) for n in ast.walk(child.annotation))
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and child.returns:
            skip.update(id(n) for n in ast.walk(child.returns))
        elif isinstance(child, ast.Attribute):
            skip.add(id(child.value))  # only the whole chain counts
        if isinstance(child, ast.ClassDef):  # bases are followed apart, decorators build nothing
            for part in [*child.bases, *child.keywords, *child.decorator_list]:
                skip.update(id(n) for n in ast.walk(part))
        elif (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Name)
            and child.func.id in {"isinstance", "issubclass"}
            and len(child.args) == 2
        ):
            skip.update(id(n) for n in ast.walk(child.args[1]))
    for child in ast.walk(node):
        if id(child) in skip or not isinstance(child, ast.Name | ast.Attribute):
            continue
        name = dotted(child) if isinstance(child.ctx, ast.Load) else None
        if name and name.split(".")[0] not in {"self", "cls", "super"}:
            yield name


class Walker:
    """One scan of one tree: ``walk(symbol)`` from the model class, ``found`` in order."""

    def __init__(self, tree: SourceTree, *, model_prefixes: tuple[str, ...]) -> None:
        self.tree = tree
        # classes under these module prefixes are model code, walked in full
        self.model_prefixes = model_prefixes
        self.found: dict[tuple[str, str], FoundOp] = {}
        self._walked: set[str] = set()
        self.walked: list[Symbol] = []  # the model classes walked, in order

    def walk(self, symbol: Symbol, used_by: str = "", depth: int | None = None) -> None:
        """``depth`` None: model code (follow everything); a number: a layer's sub-layers."""
        if symbol.qualname in self._walked:
            return
        self._walked.add(symbol.qualname)
        if depth is None:
            self.walked.append(symbol)
        owner = symbol.name if depth is None else used_by
        # a model class's bases are model code too; a layer's bases are never built on their own
        if isinstance(symbol.node, ast.ClassDef) and depth is None:
            for base in symbol.node.bases:
                if (name := dotted(base)) is not None:
                    self._visit(symbol.module, name, owner, depth)
        for name in _references(symbol.node):
            self._visit(symbol.module, name, owner, depth)
        if depth is None:
            self._module_kernels(symbol.module, owner)

    def _visit(self, module: str, name: str, owner: str, depth: int | None) -> None:
        if name.split(".", maxsplit=1)[0] in {"super", "self", "cls"}:
            return
        target = self.tree.resolve(module, name)
        if target is None:
            return
        if not target.is_class and is_triton_kernel(target.node):
            self._add(target, "triton", owner)
            return
        if target.module.startswith(QUANTIZATION) and depth is None:
            if target.is_class and target.name.endswith("Config"):
                self._quant(target, owner)
            return
        if target.module.startswith(LAYERS):
            self._layer(target, owner, depth)
        elif depth is None and target.is_class and target.module.startswith(self.model_prefixes):
            self.walk(target, owner)

    def _layer(self, target: Symbol, owner: str, depth: int | None) -> None:
        if not target.is_class:
            returned = self._returned_class(target)
            if returned is None:
                return
            target = returned
        names, registered = self.lineage(target)
        base = next((b for b in REPLACEABLE if b in names), None)
        if (depth is not None and base is None) or "Module" not in names:
            return  # not an nn.Module; inside a layer only the replaceable sub-layers matter
        detail = f"{base} {registered!r}" if base and registered else (base or "")
        attention = bool(ATTENTION_LAYERS.intersection(names))
        self._add(target, "custom op" if base else "layer", owner, detail, attention=attention)
        next_depth = LAYER_DEPTH if depth is None else depth - 1
        # what an attention layer builds is the platform backend's business
        if next_depth > 0 and not attention:
            self.walk(target, owner, next_depth)

    def _returned_class(self, function: Symbol) -> Symbol | None:
        node = function.node
        if isinstance(node, ast.ClassDef) or node.returns is None:
            return None
        name = dotted(node.returns)
        if name is None and isinstance(node.returns, ast.Constant):
            name = str(node.returns.value)  # a string annotation
        target = self.tree.resolve(function.module, name) if name else None
        return target if target is not None and target.is_class else None

    def lineage(self, cls: Symbol, _depth: int = 0) -> tuple[list[str], str | None]:
        """The class's own name and its ancestors' (as written), and the first name one of
        them registers under (``@CustomOp.register("rms_norm")``)."""
        node = cls.node
        if not isinstance(node, ast.ClassDef) or _depth > 12:
            return [], None
        names, registered = [node.name], _registered_name(node)
        for base in node.bases:
            name = dotted(base) or ""
            names.append(name.split(".")[-1])
            parent = self.tree.resolve(cls.module, name)
            if parent is not None:
                more, inherited = self.lineage(parent, _depth + 1)
                names += more
                registered = registered or inherited
        return names, registered

    def _quant(self, target: Symbol, owner: str) -> None:
        method = target.module.removeprefix(QUANTIZATION).strip(".").split(".")[0]
        if method in {"", "base_config"}:
            return  # QuantizationConfig itself: every model takes one
        key = ("quant", method)
        if key not in self.found:
            self.found[key] = FoundOp(
                op=method,
                kind="quant",
                defined_at=self.tree.where(target),
                detail=f"{target.name} referenced by the model code",
                used_by=owner,
            )

    def _module_kernels(self, module: str, owner: str) -> None:
        """Triton kernels the model's own module defines run with it."""
        mod = self.tree.module(module)
        if mod is None:
            return
        for name, node in mod.defs.items():
            if not isinstance(node, ast.ClassDef) and is_triton_kernel(node):
                self._add(Symbol(module, name, node, mod.path), "triton", owner)

    def _add(
        self, target: Symbol, kind: OpKind, owner: str, detail: str = "", *, attention: bool = False
    ) -> None:
        key = (kind, target.qualname)
        if key not in self.found:
            self.found[key] = FoundOp(
                op=target.name,
                kind=kind,
                defined_at=self.tree.where(target),
                detail=detail,
                used_by=owner,
                attention=attention,
            )


def _registered_name(node: ast.ClassDef) -> str | None:
    """``@CustomOp.register("rms_norm")`` -> "rms_norm"."""
    for deco in node.decorator_list:
        if not isinstance(deco, ast.Call) or not deco.args:
            continue
        name = dotted(deco.func) or ""
        arg = deco.args[0]
        if name.endswith(".register") and isinstance(arg, ast.Constant):
            return str(arg.value)
    return None
