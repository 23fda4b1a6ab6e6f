"""``adaptgate report``: formats, languages, merge and errors through the command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from adaptgate.cli.report import command


def test_format_and_lang_choose_the_files(full_run):
    runner = CliRunner()
    done = runner.invoke(command, [str(full_run), "--format", "md", "--lang", "zh", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["files"] == [str(full_run / "REPORT.zh.md")]
    done = runner.invoke(command, [str(full_run), "--lang", "all", "--json"])
    names = [p.rsplit("/", 1)[1] for p in json.loads(done.output)["files"]]
    assert names == ["REPORT.md", "REPORT.html", "REPORT.zh.md", "REPORT.zh.html"]


def test_merge_writes_into_out(make_run, tmp_path):
    a, b = make_run("a"), make_run("b")
    out = tmp_path / "cmp"
    done = CliRunner().invoke(command, [str(a), str(b), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert (out / "REPORT.md").is_file() and (out / "REPORT.html").is_file()


def test_out_with_one_run_is_a_usage_error(full_run, tmp_path):
    done = CliRunner().invoke(command, [str(full_run), "--out", str(tmp_path / "x")])
    assert done.exit_code == 2


def test_a_directory_without_run_json_is_exit_2(tmp_path):
    done = CliRunner().invoke(command, [str(tmp_path)])
    assert done.exit_code == 2
