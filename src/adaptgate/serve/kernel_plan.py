"""Which of adaptgate's engine kernels and engine source edits a plan turns on (kernels.yaml):
each choice with its reason, the variable that switches a kernel on, the setup steps that install
it, and why an edit that does not apply is left out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from adaptgate import __version__
from adaptgate.messages import said
from adaptgate.serve.container import CACHE_DIR
from adaptgate.serve.knowledge import (
    PlanContext,
    kernel_knowledge,
    row_said,
    source_text,
    when_holds,
)
from adaptgate.serve.models import EnvVar, KernelChoice, Omitted, SetupStep

WHEEL_DIR = f"{CACHE_DIR}/adaptgate-wheels"
WHEEL = f"{WHEEL_DIR}/adaptgate-{__version__}-py3-none-any.whl"
# Inside the container: which classes the plugin patches on the image's vLLM (it checks each
# forward against the code it replaces and leaves a different one alone).
_PROBE = (
    "from adaptgate.kernels.vllm_plugin import patch_qwen3_attention\n"
    "for outcome in patch_qwen3_attention():\n"
    '    print(outcome.target, "patched" if outcome.patched else outcome.reason)\n'
)


@dataclass
class KernelPlan:
    choices: list[KernelChoice] = field(default_factory=list)
    env: list[EnvVar] = field(default_factory=list)
    steps: list[SetupStep] = field(default_factory=list)
    omitted: list[Omitted] = field(default_factory=list)

    def enabled(self, name: str) -> bool:
        return any(c.name == name and c.enabled for c in self.choices)


def _install_commands(kernel: dict[str, Any], ctx: PlanContext) -> tuple[list[list[str]], str]:
    """Container commands that install the kernel's Triton backend, and why (or why none)."""
    row = next(r for r in kernel["install"] if when_holds(r.get("when"), ctx))
    if not row.get("package"):
        return [], row["reason"]
    spec = f"{row['package']}=={row['version']}"
    return [["pip", "uninstall", "-y", "triton"], ["pip", "install", spec]], row["reason"]


def _kernel_step(kernel: dict[str, Any], ctx: PlanContext) -> SetupStep:
    data = kernel_knowledge()
    install, install_why = _install_commands(kernel, ctx)
    container = [
        *install,
        ["pip", "install", "--no-deps", "--force-reinstall", WHEEL],
        ["python3", "-c", _PROBE],
    ]
    reason = (
        f"{install_why}. The plugin is adaptgate itself, installed without dependencies (it "
        "needs only torch, vLLM and Triton, which the image has): built as a wheel on the host "
        f"into {WHEEL_DIR}, which the container mounts; vLLM loads it through the "
        f"vllm.general_plugins entry point, and it acts only with {kernel['env']}=1"
    )
    return SetupStep(
        name=kernel["name"],
        title=f"Install {kernel['title']}",
        host=[["pip", "wheel", "--no-deps", "--wheel-dir", WHEEL_DIR, "${ADAPTGATE_SRC}"]],
        container=container,
        reason=reason,
        source=source_text(data, kernel["install"][0].get("source")),
        expect="both Qwen3Attention and Qwen3MoeAttention 'patched'; a reason instead means "
        "the image's vLLM forward differs and the engine's own q/k-norm runs",
    )


def _edit_command(edit: dict[str, Any]) -> list[str]:
    """A python3 command that removes ``edit['remove']`` from ``edit['function']`` in the
    installed vllm-ascend's ``edit['file']`` where it is a statement of its own, and says what
    it did (nothing, where the file does not have it)."""
    package, _, rel = edit["file"].partition("/")
    q = json.dumps  # double-quoted literals: the shell wraps the program in single quotes
    code = (
        "import ast, importlib.util, pathlib\n"
        f"spec = importlib.util.find_spec({q(package)})\n"
        f"path = pathlib.Path(spec.submodule_search_locations[0], {q(rel)})\n"
        "text = path.read_text()\n"
        "fn = next(n for n in ast.parse(text).body\n"
        f'          if getattr(n, "name", "") == {q(edit["function"])})\n'
        f"hits = [s.lineno for s in fn.body if ast.unparse(s) == {q(edit['remove'])}]\n"
        "lines = text.splitlines(keepends=True)\n"
        "for n in reversed(hits):\n"
        "    del lines[n - 1]\n"
        'path.write_text("".join(lines))\n'
        'print(path, "removed line(s)", hits if hits else "none: nothing to remove")\n'
    )
    return ["python3", "-c", code]


def kernel_plan(ctx: PlanContext) -> KernelPlan:
    """The kernels and source edits for the plan's target, family and release."""
    data = kernel_knowledge()
    out = KernelPlan()
    fused = {f["name"]: f for f in data["release_fusions"] if when_holds(f["when"], ctx)}
    for kernel in data["kernels"]:
        if ctx.family not in kernel["families"]:
            continue
        choice = {"name": kernel["name"], "title": kernel["title"], "env": kernel["env"]}
        if not when_holds(kernel["when"], ctx):
            out.choices.append(
                KernelChoice(**choice, enabled=False, reason=f"off: {kernel['off_reason']}")
            )
            continue
        fusion = fused.get(kernel["unless_fused"])
        if fusion is not None:
            out.choices.append(
                KernelChoice(
                    **choice,
                    enabled=False,
                    reason=f"off: {fusion['reason']}",
                    source=source_text(data, fusion.get("source")),
                )
            )
            continue
        source = source_text(data, kernel.get("source"))
        out.choices.append(
            KernelChoice(**choice, enabled=True, reason=f"on: {kernel['reason']}", source=source)
        )
        out.env.append(
            EnvVar(
                name=kernel["env"],
                value="1",
                reason=said(
                    "serve.kernel_env",
                    title=row_said(kernel, "title"),
                    reason=row_said(kernel),
                ),
                source=source,
            )
        )
        out.steps.append(_kernel_step(kernel, ctx))
    for edit in data["source_edits"]:
        if when_holds(edit["when"], ctx):
            out.steps.append(
                SetupStep(
                    name=edit["name"],
                    title=edit["title"],
                    container=[_edit_command(edit)],
                    reason=edit["reason"],
                    source=source_text(data, edit.get("source")),
                    expect=f"the path of {edit['file']} and the line numbers removed (or none)",
                )
            )
        elif when_holds({"platform": edit["when"]["platform"], "moe": True}, ctx):
            out.omitted.append(Omitted(name=edit["title"], reason=row_said(edit, "off_reason")))
    return out
