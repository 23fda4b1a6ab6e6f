"""Where the numbers of a rendered report come from: every number token of the report must be
a rendering (by adaptgate.report.numbers) of a value in run.json, a number written inside one of
its strings, or the length of one of its lists. Heading numbers are structure, not data."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from adaptgate.report.numbers import FORMATTERS

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:e[+-]?\d+)?(?![\w])")
HEADING_NUMBER = re.compile(r"^(#+ )\d+(?:\.\d+)?\.? ", re.MULTILINE)


def tokens(text: str) -> set[str]:
    return set(NUMBER.findall(text))


def walk(data: Any) -> tuple[list[float | int], list[str], list[int]]:
    numbers: list[float | int] = []
    strings: list[str] = []
    lengths: list[int] = []

    def go(x: Any) -> None:
        if isinstance(x, bool) or x is None:
            return
        if isinstance(x, int | float):
            numbers.append(x)
        elif isinstance(x, str):
            strings.append(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                strings.append(str(k))
                go(v)
        elif isinstance(x, list):
            lengths.append(len(x))
            for v in x:
                go(v)

    go(data)
    return numbers, strings, lengths


def allowed_tokens(*records: dict[str, Any]) -> set[str]:
    allowed: set[str] = set()
    for record in records:
        numbers, strings, lengths = walk(record)
        for value in [*numbers, *lengths]:
            for fmt in FORMATTERS:
                allowed |= tokens(fmt(value))
        for s in strings:
            allowed |= tokens(s)
    return allowed


def markdown_numbers(text: str) -> set[str]:
    return tokens(HEADING_NUMBER.sub(r"\1", text))


def html_text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.DOTALL)
    html = re.sub(r"<nav>.*?</nav>", " ", html, flags=re.DOTALL)
    html = re.sub(r"<h([23])([^>]*)>\d+(?:\.\d+)?\.? ", r"<h\1\2>", html)
    html = re.sub(r"<img[^>]*>", " ", html)
    html = re.sub(r"<head>.*?</head>", " ", html, flags=re.DOTALL)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def strings_of(record: dict[str, Any]) -> list[str]:
    return walk(record)[1]
