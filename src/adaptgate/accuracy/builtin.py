"""adaptgate's own offline task: generated arithmetic and fact questions with exact answers, in
English and Chinese, written as an lm-eval task (YAML, JSONL data, a scoring shim) that lm-eval
loads through its ``include_path``. The problems come from a seeded generator, so the same seed
gives the same items (their lm-eval hash is in every result). The real demo model (SmolLM2-135M-
Instruct) answers many of them, so a broken deployment shows as a drop, not as noise at zero."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import yaml

from adaptgate.accuracy.models import BUILTIN_TASKS as TASKS

SEED = 16
MAX_GEN_TOKS = 24

# (question, answer): facts whose answer is one number or one word
FACTS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("How many days are there in a week?", "7"),
        ("How many hours are there in a day?", "24"),
        ("How many months are there in a year?", "12"),
        ("How many minutes are there in an hour?", "60"),
        ("How many legs does a dog have?", "4"),
        ("How many sides does a triangle have?", "3"),
        ("How many wheels does a bicycle have?", "2"),
        ("What is the capital of France?", "paris"),
        ("What is the capital of Japan?", "tokyo"),
        ("What color is the sky on a clear day?", "blue"),
    ],
    "zh": [
        ("一个星期有几天？", "7"),
        ("一天有多少个小时？", "24"),
        ("一年有几个月？", "12"),
        ("一个小时有多少分钟？", "60"),
        ("一只狗有几条腿？", "4"),
        ("三角形有几条边？", "3"),
        ("自行车有几个轮子？", "2"),
        ("中国的首都是哪个城市？", "北京"),
        ("日本的首都是哪个城市？", "东京"),
        ("晴天的天空是什么颜色？", "蓝"),
    ],
}
_ARITHMETIC = {
    "en": {
        "+": "What is {a} plus {b}?",
        "-": "What is {a} minus {b}?",
        "*": "What is {a} times {b}?",
    },
    "zh": {"+": "{a}加{b}等于多少？", "-": "{a}减{b}等于多少？", "*": "{a}乘以{b}等于多少？"},
}
ARITHMETIC_PER_LANGUAGE = 30


def arithmetic(rng: random.Random, lang: str) -> dict[str, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
    else:
        a, b = rng.randint(2, 20), rng.randint(1, 20)
        a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
    answer = {"+": a + b, "-": a - b, "*": a * b}[op]
    return {"question": _ARITHMETIC[lang][op].format(a=a, b=b), "answer": str(answer)}


def items(lang: str, seed: int = SEED) -> list[dict[str, str]]:
    """The task's problems in ``lang``: the facts, then seeded arithmetic, each with an id."""
    rng = random.Random(f"{seed}-{lang}")  # a str seed hashes identically on every platform
    problems = [{"question": q, "answer": a} for q, a in FACTS[lang]]
    problems += [arithmetic(rng, lang) for _ in range(ARITHMETIC_PER_LANGUAGE)]
    return [{"id": f"{lang}-{i:03d}", **p} for i, p in enumerate(problems)]


_NUMBER = re.compile(r"\d+")


def answer_number(reply: str) -> str | None:
    """The number a reply gives: the first after its last "=" or "等于" (a reply that works the
    sum, "18 - 7 = 11"), else its first ("A week has 7 days"). Digits only: Chinese numerals are
    also parts of words (三角形, 一天), so a reply that echoes the question would score."""
    cut = max(reply.rfind("="), reply.rfind("等于"))
    match = _NUMBER.search(reply[cut + 1 :] if cut >= 0 else reply)
    return str(int(match.group())) if match else None


def is_correct(reply: str, answer: str) -> bool:
    """Exact: the reply's number (see answer_number) equals a numeric answer; a word answer is a
    whole word of the reply (English, any case) or in it (Chinese, which has no spaces)."""
    if answer.isdigit():
        return answer_number(reply) == answer
    if answer.isascii():
        return answer in re.findall(r"[a-z]+", reply.lower())
    return answer in reply


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """lm-eval's per-document scoring hook (named by the task YAML)."""
    return {"exact_match": int(is_correct(results[0], doc["answer"]))}


def _config(task: str, data_file: Path) -> dict[str, Any]:
    return {
        "task": task,
        "dataset_path": "json",  # datasets' packaged JSON builder: a local file, no network
        "dataset_kwargs": {
            "data_files": {"test": str(data_file)},
            "cache_dir": str(data_file.parent / "cache"),  # not the user's datasets cache
        },
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_target": "{{answer}}",
        "process_results": "!function utils.process_results",
        "generation_kwargs": {"until": ["\n"], "max_gen_toks": MAX_GEN_TOKS, "do_sample": False},
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def write_task(directory: Path, seed: int = SEED) -> Path:
    """The task's files under ``directory`` (YAML per language, JSONL data, the scoring shim):
    lm-eval's ``include_path``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "utils.py").write_text(
        "from adaptgate.accuracy.builtin import process_results  # noqa: F401\n", "utf-8"
    )
    for task in TASKS:
        lang = task.rsplit("_", 1)[1]
        data = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in items(lang, seed))
        data_file = directory / f"{task}.jsonl"
        data_file.write_text(data, "utf-8")
        text = yaml.safe_dump(_config(task, data_file), allow_unicode=True, sort_keys=False)
        # the YAML tag lm-eval resolves to the shim's function (safe_dump would quote it)
        text = text.replace("'!function utils.process_results'", "!function utils.process_results")
        (directory / f"{task}.yaml").write_text(text, "utf-8")
    return directory
