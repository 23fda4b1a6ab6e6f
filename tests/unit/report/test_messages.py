"""The message catalogue (adaptgate.messages): every id in both languages with the same
parameters, and run.json's English reasons are their messages' English rendering."""

from __future__ import annotations

import json
import re
import string
from importlib import resources

import pytest
import yaml
from report_runs import DATA

from adaptgate.errors import UsageError
from adaptgate.messages import LANGS, Said, catalogue, message, render, said


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_message_has_both_languages_with_the_same_parameters():
    en, zh = catalogue("en"), catalogue("zh")
    assert en and set(en) == set(zh)
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for key in en:
        assert _fields(en[key]) == _fields(zh[key]), key
        # Chinese, or no words at all (a join such as "{first}；{second}")
        words = re.sub(r"\{\w+\}", "", zh[key])
        assert cjk.search(zh[key]) or not re.search(r"[A-Za-z]", words), key


def test_each_catalogue_file_holds_its_area_and_only_known_languages():
    files = [
        f
        for f in resources.files("adaptgate.messages").joinpath("catalogue").iterdir()
        if f.name.endswith(".yaml")
    ]
    assert files
    for f in files:
        for key, langs in yaml.safe_load(f.read_text("utf-8")).items():
            assert key.split(".")[0] == f.name.removesuffix(".yaml"), (f.name, key)
            assert sorted(langs) == sorted(LANGS), (f.name, key)


def test_a_message_renders_nested_messages_in_each_language():
    inner = message("convert.no_route", route="native")
    outer = message("gate.serve_not_passed", status="FAIL", reason=inner)
    said = "serve did not pass, so no server (FAIL: inspect's route is native: no conversion"
    assert outer.text == said + " needed)"
    assert "无需转换" in render(outer.id, outer.params, "zh")
    with pytest.raises(KeyError):
        message("smoke.verdict", protocol="PASS")
    with pytest.raises(UsageError):
        catalogue("fr")


@pytest.mark.parametrize("source", ["run_full.json", "run_cpu.json", "run_cpu_bf16.json"])
def test_stored_reasons_are_their_messages_english_text(source: str):
    record = json.loads((DATA / source).read_text(encoding="utf-8"))
    with_id = [g for g in record["gates"] if g.get("reason_id")]
    assert with_id
    for gate in with_id:
        assert render(gate["reason_id"], gate["reason_params"], "en") == gate["reason"]


def test_a_said_sentence_reads_old_strings_and_renders_data_sentences_in_each_language():
    assert Said.model_validate("as stored").in_lang("zh") == "as stored"
    row = Said(text="expandable segments reduce fragmentation", zh="可扩展段减少碎片")
    assert (row.in_lang("en"), row.in_lang("zh")) == (row.text, row.zh)
    quoted = said("gate.serve_not_passed", status="FAIL", reason=row)
    assert quoted.text.endswith("(FAIL: expandable segments reduce fragmentation)")
    assert quoted.in_lang("zh").endswith("（FAIL：可扩展段减少碎片）")
    assert Said.model_validate(quoted.model_dump()) == quoted
