from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from adaptgate.cli.main import COMMANDS, cli


def test_help_lists_every_command_and_the_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert "2 bad input" in result.output


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from adaptgate.cli.main import cli\n"
        "try:\n    cli(['--help'], prog_name='adaptgate')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'safetensors', 'numpy')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_every_command_has_help_without_heavy_imports():
    for name in COMMANDS:
        code = (
            "import sys\nfrom adaptgate.cli.main import cli\n"
            f"try:\n    cli([{name!r}, '--help'], prog_name='adaptgate')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        assert "HEAVY []" in out.stdout, name


def test_unknown_command_is_usage_error_exit_2():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
