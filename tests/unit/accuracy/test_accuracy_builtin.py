"""The built-in task: generated deterministically, answers exact, scored on the reply's number
or word, written as an lm-eval task."""

from __future__ import annotations

import re

import pytest
import yaml

from adaptgate.accuracy.builtin import TASKS, answer_number, is_correct, items, write_task

_EN = re.compile(r"What is (\d+) (plus|minus|times) (\d+)\?")
_ZH = re.compile(r"(\d+)(加|减|乘以)(\d+)等于多少？")
_OPS = {"plus": int.__add__, "minus": int.__sub__, "times": int.__mul__,
        "加": int.__add__, "减": int.__sub__, "乘以": int.__mul__}  # fmt: skip


def test_the_same_seed_gives_the_same_items_and_another_seed_other_arithmetic():
    assert items("en") == items("en") and items("zh", seed=3) == items("zh", seed=3)
    assert items("en", seed=1) != items("en", seed=2)
    assert len(items("en")) == len(items("zh")) == 40
    assert len({i["id"] for i in items("en") + items("zh")}) == 80


@pytest.mark.parametrize("seed", [16, 0, 12345])
def test_every_arithmetic_answer_is_exact(seed):
    checked = 0
    for lang, pattern in (("en", _EN), ("zh", _ZH)):
        for item in items(lang, seed):
            match = pattern.fullmatch(item["question"])
            if match is None:
                continue
            a, op, b = match.groups()
            assert item["answer"] == str(_OPS[op](int(a), int(b))), item
            assert int(item["answer"]) >= 0
            checked += 1
    assert checked == 60


def test_no_question_contains_its_answer():
    """An echo of the question must never score."""
    for item in items("en") + items("zh"):
        assert not is_correct(item["question"], item["answer"]), item


@pytest.mark.parametrize(
    ("reply", "answer", "correct"),
    [
        ("A week is 7 days.", "7", True),
        ("18 - 7 = 11", "11", True),
        ("2乘以6等于12. 12 is 2 more than 6.", "12", True),
        ("11减5等于1000", "6", False),
        ("17 + 1 = 2", "18", False),
        ("There are 12 hours in an hour.", "60", False),
        ("A dog has four legs.", "4", False),  # digits only: exact, no word numbers
        ("三角形有几条边？", "3", False),  # 三 is part of a word, not an answer
        ("The capital of France is Paris.", "paris", True),
        ("Parisian food", "paris", False),
        ("中国的首都是北京。", "北京", True),
        ("中国的首都是哪个", "北京", False),
    ],
)
def test_scoring(reply, answer, correct):
    assert is_correct(reply, answer) is correct


def test_answer_number_reads_after_the_last_equals():
    assert answer_number("3 + 4 = 7, so 7") == "7"
    assert answer_number("1 = 2 = 3") == "3"
    assert answer_number("no number") is None


class _Loader(yaml.SafeLoader):
    """SafeLoader reading lm-eval's ``!function`` tag as its text."""


_Loader.add_constructor("!function", lambda _loader, node: node.value)


def test_write_task_writes_an_lm_eval_task_per_language(tmp_path):
    root = write_task(tmp_path / "task")
    assert (root / "utils.py").is_file()
    for name in TASKS:
        text = (root / f"{name}.yaml").read_text("utf-8")
        assert "process_results: !function utils.process_results" in text
        config = yaml.load(text, Loader=_Loader)
        assert config["task"] == name and config["output_type"] == "generate_until"
        data = config["dataset_kwargs"]["data_files"]["test"]
        lang = name.rsplit("_", 1)[1]
        lines = (root / f"{name}.jsonl").read_text("utf-8").splitlines()
        assert data == str(root / f"{name}.jsonl") and len(lines) == len(items(lang))
