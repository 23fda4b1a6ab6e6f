"""Rendered commands are copy-pasteable: the shell hands vLLM exactly the planned argv."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptgate.serve.models import PlanOptions
from adaptgate.serve.plan import build_plan
from adaptgate.serve.shell import engine_argv, node_script, render_command, shell_word

CONFIGS = Path(__file__).parents[2] / "data" / "configs"
words = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=8))
def test_one_line_rendering_round_trips_through_shlex(argv: list[str]) -> None:
    argv = [w for w in argv if "${" not in w] or ["x"]
    assert shlex.split(render_command(argv, width=10**6)) == argv


@settings(max_examples=60, deadline=None)
@given(st.lists(words, min_size=1, max_size=8))
def test_multi_line_rendering_gives_the_shell_the_same_argv(argv: list[str]) -> None:
    """With backslash continuations, what sh passes on is the argv (printf as the command)."""
    argv = [w for w in argv if "${" not in w] or ["x"]
    script = render_command(["printf", "%s\\0", *argv], width=20)
    done = subprocess.run(["sh", "-c", script], capture_output=True, check=True)
    assert done.stdout.decode("utf-8").split("\0")[:-1] == argv


def test_placeholders_stay_expandable_and_the_rest_literal() -> None:
    word = 'a"b$c`d${HEAD_IP}-x'
    rendered = shell_word(word)
    out = subprocess.run(
        ["sh", "-c", f"printf %s {rendered}"],
        env={"HEAD_IP": "10.0.0.1", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == 'a"b$c`d10.0.0.1-x'


def _fake_vllm(bin_dir: Path) -> None:
    bin_dir.mkdir()
    script = bin_dir / "vllm"
    script.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_node_scripts_pass_the_exact_argv(tmp_path: Path) -> None:
    """Run the multi-node scripts with a stand-in `vllm` that prints its arguments."""
    plan = build_plan(
        PlanOptions(config_path=CONFIGS / "Qwen3-235B-A22B.json", target="ascend-a2", devices=8)
    )
    assert len(plan.commands) == 2
    _fake_vllm(tmp_path / "bin")
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HEAD_IP": "10.1.2.3",
        "LOCAL_IP": "10.1.2.4",
        "NIC_NAME": "eth0",
    }
    for node in plan.commands:
        script = tmp_path / f"node{node.node}.sh"
        script.write_text(node_script(plan, node))
        done = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        want = [w.replace("${HEAD_IP}", "10.1.2.3") for w in engine_argv(plan, node)[1:]]
        assert json.loads(done.stdout) == want


def test_node_script_stops_when_a_placeholder_is_unset(tmp_path: Path) -> None:
    plan = build_plan(
        PlanOptions(config_path=CONFIGS / "Qwen3-235B-A22B.json", target="ascend-a2", devices=8)
    )
    _fake_vllm(tmp_path / "bin")
    script = tmp_path / "node1.sh"
    script.write_text(node_script(plan, plan.commands[1]))
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "LOCAL_IP": "x", "NIC_NAME": "y"}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "set HEAD_IP: IP address of node 0" in done.stderr
    assert done.stdout == ""
