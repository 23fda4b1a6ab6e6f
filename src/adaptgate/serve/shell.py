"""Commands as argv lists, rendered for a POSIX shell: every word quoted with shlex, except the
``${NAME}`` placeholders the operator sets, which stay expandable inside double quotes."""

from __future__ import annotations

import re
import shlex

from adaptgate.serve.models import EnvVar, Flag, LaunchPlan, NodeCommand

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
PLACEHOLDERS = {
    "MODEL_DIR": "absolute path of the downloaded checkpoint directory",
    "HEAD_IP": "IP address of node 0",
    "LOCAL_IP": "this node's IP address",
    "NIC_NAME": "network interface that carries LOCAL_IP (see: ip addr)",
    "ADAPTGATE_SRC": "the adaptgate source checkout the plugin wheel is built from",
}


def shell_word(word: str) -> str:
    """One argv word, quoted so the shell passes it through unchanged; ``${NAME}`` parts are
    left for the shell to expand (double-quoted, everything else escaped)."""
    if not _VAR.search(word):
        return shlex.quote(word)
    out, pos = ['"'], 0
    for match in _VAR.finditer(word):
        out.append(_dq_escape(word[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_dq_escape(word[pos:]))
    out.append('"')
    return "".join(out)


def _dq_escape(text: str) -> str:
    return re.sub(r'(["\\$`])', r"\\\1", text)


def placeholder_guard(name: str, meaning: str | None = None) -> str:
    """A shell line that stops with a message when the placeholder variable is unset."""
    text = meaning or PLACEHOLDERS.get(name, "set it first")
    text = re.sub(r"[`$\"\\}]", "", text)  # inside "${X:?...}": no expansion, no quote
    return f': "${{{name}:?set {name}: {text}}}"'


def placeholders_in(words: list[str]) -> list[str]:
    return sorted({m.group(0)[2:-1] for w in words for m in _VAR.finditer(w)})


def flag_argv(flags: list[Flag]) -> list[str]:
    argv: list[str] = []
    for f in flags:
        argv.append(f.flag)
        if f.value is not None:
            argv.append(f.value)
    return argv


def engine_argv(
    plan: LaunchPlan,
    node: NodeCommand | None = None,
    *,
    python: str | None = None,
    model_path: str | None = None,
) -> list[str]:
    """The vLLM command of one node: ``vllm serve PATH ...`` on accelerators, or ``PYTHON -m
    vllm.entrypoints.openai.api_server --model PATH ...`` (the CPU build, and managed serving,
    where the ``vllm`` console script is not usable)."""
    path = model_path or plan.served_path
    extra = node.extra_flags if node else []
    flags = flag_argv(plan.flags + extra)
    if python is not None or plan.launcher == "python-module":
        return [python or "python", "-m", API_SERVER_MODULE, "--model", path, *flags]
    return ["vllm", "serve", path, *flags]


def render_command(argv: list[str], *, width: int = 100) -> str:
    """Multi-line when long: one ``--flag value`` pair per line, ``\\`` continuations."""
    words = [shell_word(w) for w in argv]
    one_line = " ".join(words)
    if len(one_line) <= width:
        return one_line
    lines: list[str] = []
    i = 0
    head = []
    while i < len(words) and not argv[i].startswith("-"):
        head.append(words[i])
        i += 1
    lines.append(" ".join(head))
    while i < len(words):
        group = [words[i]]
        # a flag takes at most one value; later positional words get their own line
        if argv[i].startswith("-") and i + 1 < len(words) and not argv[i + 1].startswith("-"):
            group.append(words[i + 1])
            i += 1
        i += 1
        lines.append("  " + " ".join(group))
    return " \\\n".join(lines)


def export_lines(env: list[EnvVar], *, comments: bool = True) -> list[str]:
    lines: list[str] = []
    for var in env:
        if comments:
            lines.append(f"# {var.reason}")
        lines.append(f"export {var.name}={shell_word(var.value)}")
    return lines


def node_script(plan: LaunchPlan, node: NodeCommand, *, comments: bool = True) -> str:
    """A copy-pasteable shell script for one node: placeholders, environment, command."""
    argv = engine_argv(plan, node)
    title = f"# {plan.served_model_name} on {plan.target}: node {node.node} ({node.role})"
    lines = ["#!/bin/sh", title, "set -e"]
    names = placeholders_in(argv + [v.value for v in node.env])
    for name in names:
        lines.append(placeholder_guard(name, node.placeholders.get(name)))
    lines += export_lines(node.env, comments=comments)
    lines.append(render_command(argv))
    return "\n".join(lines) + "\n"
