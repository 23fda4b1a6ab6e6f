"""adaptgate.settings: every ADAPTGATE_* variable parsed in one module, and read nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import adaptgate
from adaptgate import settings as st
from adaptgate.cli._common import handle_errors
from adaptgate.errors import UsageError

SRC = Path(adaptgate.__file__).parent


def test_every_variable_parsed():
    s = st.load_settings(
        {
            "ADAPTGATE_DEBUG": "1",
            "ADAPTGATE_CACHE_DIR": "/tmp/kernels",
            "ADAPTGATE_KERNEL": "NumPy",
            "ADAPTGATE_CONVERT_TO": "+w8a8-dynamic",
            "ADAPTGATE_KVCACHE": " fp8_e4m3,int8_c8 ",
            "ADAPTGATE_VLLM_PYTHON": "/opt/vllm/bin/python",
            "ADAPTGATE_QK_RMSNORM": "on",
            "HOME": "/root",
        }
    )
    assert s.debug is True and s.cache_dir == Path("/tmp/kernels") and s.kernel == "numpy"
    assert s.convert_to == "+w8a8-dynamic" and s.kvcache == "fp8_e4m3,int8_c8"
    assert s.vllm_python == "/opt/vllm/bin/python" and s.qk_rmsnorm is True
    # every variable the module names is a field read above (a new one must be added here)
    names = {v for k, v in vars(st).items() if k.isupper() and str(v).startswith("ADAPTGATE_")}
    assert names == set(s.given) == {
        st.DEBUG, st.CACHE_DIR, st.KERNEL, st.CONVERT_TO, st.KVCACHE, st.VLLM_PYTHON, st.QK_RMSNORM
    }  # fmt: skip


def test_defaults_and_empty_counts_as_unset():
    assert st.load_settings({}) == st.Settings()
    blank = st.load_settings({"ADAPTGATE_KERNEL": "", "ADAPTGATE_DEBUG": " "})
    assert blank == st.Settings() and blank.run_env() == {}
    s = st.Settings()
    assert (s.debug, s.cache_dir, s.kernel, s.convert_to, s.kvcache) == (
        False, None, "auto", None, None
    )  # fmt: skip
    assert s.vllm_python is None and s.qk_rmsnorm is False


@pytest.mark.parametrize(
    ("text", "on"), [("1", True), ("TRUE", True), ("0", False), ("off", False)]
)
def test_flags(text, on):
    assert st.load_settings({st.QK_RMSNORM: text}).qk_rmsnorm is on
    assert st.load_settings({st.DEBUG: text}).debug is on


@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("ADAPTGATE_DEBUG", "2", "1 or 0"),
        ("ADAPTGATE_QK_RMSNORM", "maybe", "1 or 0"),
        ("ADAPTGATE_KERNEL", "cuda", "auto, numpy"),
        ("ADAPTGATE_CONVERT_TO", "bf16,int4", "bf16, fp16, w8a8-dynamic"),
    ],
)
def test_bad_value_is_one_line_error_naming_variable_and_valid_values(name, value, valid):
    with pytest.raises(UsageError) as caught:
        st.load_settings({name: value})
    line = caught.value.one_line()
    assert "\n" not in line and name in line and value in line and valid in line


def test_read_at_call_time(monkeypatch):
    monkeypatch.setenv("ADAPTGATE_KERNEL", "numpy")
    assert st.load_settings().kernel == "numpy"
    monkeypatch.delenv("ADAPTGATE_KERNEL")
    assert st.load_settings().kernel == "auto"


def test_run_env_holds_the_run_shaping_variables_that_were_set():
    s = st.load_settings(
        {"ADAPTGATE_DEBUG": "1", "ADAPTGATE_CACHE_DIR": "/c", "ADAPTGATE_KERNEL": "numpy"}
    )
    assert s.run_env() == {"ADAPTGATE_KERNEL": "numpy"}


def test_a_bad_variable_fails_any_command_with_one_line_and_exit_2(monkeypatch):
    ran = []

    @click.command()
    @handle_errors
    def command() -> int:
        ran.append(True)
        return 0

    monkeypatch.setenv("ADAPTGATE_KERNEL", "gpu")
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 2 and not ran
    assert result.stderr.strip().splitlines() == [
        "adaptgate: error: ADAPTGATE_KERNEL='gpu' is not a valid value "
        "-- fix: set ADAPTGATE_KERNEL to one of: auto, numpy"
    ]


# --- no module but settings.py reads an ADAPTGATE_* variable -----------------------------------

_ENV_CALLS = {"get", "getenv", "pop", "setdefault"}


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _adaptgate_names(trees: list[ast.Module]) -> set[str]:
    """Module-level names bound to an ``ADAPTGATE_*`` string anywhere in the package, and the
    local names that import them."""
    names = {
        t.id
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and str(node.value.value).startswith("ADAPTGATE_")
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    aliases = {
        a.asname
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if a.name in names and a.asname
    }
    return names | aliases


def _names_adaptgate(key: ast.expr, names: set[str]) -> bool:
    if isinstance(key, ast.Constant):
        return str(key.value).startswith("ADAPTGATE_")
    if isinstance(key, ast.JoinedStr):  # f"ADAPTGATE_{...}"
        return bool(key.values) and _names_adaptgate(key.values[0], names)
    if isinstance(key, ast.Name):
        return key.id in names
    return isinstance(key, ast.Attribute) and key.attr in names


def adaptgate_env_reads(tree: ast.Module, names: set[str]) -> list[int]:
    """Lines that read (or pop) an ADAPTGATE_* variable from the environment."""
    lines = []
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            func = node.func
            getenv = func.attr == "getenv" and isinstance(func.value, ast.Name)
            if getenv or (func.attr in _ENV_CALLS and _is_environ(func.value)):
                key = node.args[0]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            key = node.args[0] if node.func.id == "getenv" else None
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            key = node.left
        if key is not None and _names_adaptgate(key, names):
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_finds_every_way_of_reading_a_variable():
    source = """
import os
from os import environ, getenv
from adaptgate.settings import KVCACHE as KV
ENV = "ADAPTGATE_CONVERT_TO"
os.environ.get("ADAPTGATE_KERNEL")
os.getenv(ENV, "")
environ["ADAPTGATE_DEBUG"]
getenv(KV)
"ADAPTGATE_X" in os.environ
os.environ.get(f"ADAPTGATE_{ENV}")
os.environ.get("HOME")
os.environ.get(other.ENV)
"""
    tree = ast.parse(source)
    names = _adaptgate_names([tree, ast.parse('KVCACHE = "ADAPTGATE_KVCACHE"')])
    assert adaptgate_env_reads(tree, names) == [6, 7, 8, 9, 10, 11, 13]


def test_no_module_but_settings_reads_an_adaptgate_variable():
    files = sorted(SRC.rglob("*.py"))
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    names = _adaptgate_names(list(trees.values()))
    found = [
        f"{path.relative_to(SRC)}:{line}"
        for path, tree in trees.items()
        if path != SRC / "settings.py"
        for line in adaptgate_env_reads(tree, names)
    ]
    assert len(trees) > 100 and not found, f"read ADAPTGATE_* through adaptgate.settings: {found}"
