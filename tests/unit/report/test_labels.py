"""The label catalogue: both languages have every label, and a Chinese report has no English
label left in it."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from report_provenance import strings_of

import adaptgate.report
from adaptgate.errors import UsageError
from adaptgate.report.i18n import LANGS, Labels, catalogue
from adaptgate.report.render import write_report

SRC = Path(adaptgate.report.__file__).parent


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_exists_in_both_languages_with_the_same_placeholders():
    en, zh = catalogue("en"), catalogue("zh")
    assert set(en) == set(zh)
    for key in en:
        assert _fields(en[key]) == _fields(zh[key]), key
        assert zh[key].strip(), key


def test_every_label_the_code_asks_for_exists():
    used = set()
    for path in SRC.rglob("*.py"):
        used |= set(re.findall(r"\bt\(\s*\"([a-z_.]+)\"", path.read_text()))
    assert used, "the scan found no labels: the pattern is wrong"
    assert not used - set(catalogue("en"))


def test_chinese_labels_are_chinese():
    en, zh = catalogue("en"), catalogue("zh")
    cjk = re.compile(r"[\u4e00-\u9fff]")
    # labels the seeds also write in English (status codes stay readable as codes in neither)
    untranslated = [k for k in zh if zh[k] == en[k] and not k.startswith("status.")]
    assert not untranslated
    assert all(cjk.search(zh[k]) for k in zh if k.startswith(("section.", "col.", "spec.")))


def test_zh_report_contains_no_english_label(full_run):
    md = write_report(full_run, formats=("md",), langs=("zh",))[0].read_text()
    assert "模型规格" in md and "验证环境" in md and "精度验证" in md and "注意事项" in md
    record = json.loads((full_run / "run.json").read_text())
    # gate reasons, warnings and values are quoted as the gates wrote them: take them out
    for s in sorted(set(strings_of(record)), key=len, reverse=True):
        if len(s) > 2:
            md = md.replace(s, " ")
    en, zh = catalogue("en"), catalogue("zh")
    # the Chinese labels themselves keep the seeds' English terms ("Smoke 验证", "Stage A")
    for label in sorted(zh.values(), key=len, reverse=True):
        for piece in re.split(r"\{[a-z_]+\}", label):
            if len(piece.strip()) > 1:
                md = md.replace(piece.strip(), " ")
    for key, label in en.items():
        if label == zh[key]:
            continue
        for piece in re.split(r"\{[a-z_]+\}", label):
            part = piece.strip(" .:;,()")
            if part in zh[key]:  # a name the Chinese label keeps too ("ACL Graph 图模式")
                continue
            if len(part) > 3 and re.search(r"[A-Za-z]{3}", part):
                assert not re.search(rf"(?<![\w-]){re.escape(part)}(?![\w-])", md), (key, part)


def test_unknown_language_is_a_usage_error():
    with pytest.raises(UsageError, match="en, zh"):
        Labels("fr")
    assert set(LANGS) == {"en", "zh"}
