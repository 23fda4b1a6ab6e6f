from __future__ import annotations

import click
from click.testing import CliRunner

from adaptgate.cli._common import handle_errors, output_options
from adaptgate.console import Output
from adaptgate.errors import CheckpointNotFound


def _command(behaviour):
    @click.command()
    @output_options
    @handle_errors
    def cmd(out: Output) -> int:
        return behaviour(out)

    return cmd


def test_adaptgate_error_is_one_line_with_fix_and_its_exit_code():
    def boom(out):
        raise CheckpointNotFound("model dir /x does not exist", fix="pass a directory\nthat exists")

    result = CliRunner().invoke(_command(boom), [])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "adaptgate: error: model dir /x does not exist -- fix: pass a directory that exists"
    ]


def test_unexpected_exception_is_internal_error_exit_3_without_traceback(monkeypatch):
    monkeypatch.delenv("ADAPTGATE_DEBUG", raising=False)

    def boom(out):
        raise ZeroDivisionError("division by zero")

    result = CliRunner().invoke(_command(boom), [])
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert "internal error: ZeroDivisionError" in result.stderr


def test_return_value_is_exit_code_and_json_flag_reaches_command():
    seen = {}

    def ret(out):
        seen["json"] = out.json
        return 1

    result = CliRunner().invoke(_command(ret), ["--json"])
    assert result.exit_code == 1
    assert seen["json"] is True
