"""The smoke tests' fake OpenAI-compatible server, answering the built-in task's questions, right
or wrong on demand."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "smoke"))  # the fake server lives there
from fake_openai import FakeConfig, FakeOpenAI

from adaptgate.accuracy.builtin import items

ANSWERS = {i["question"]: i["answer"] for i in items("en") + items("zh")}


def _question(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    return str(text).split("Question: ", 1)[-1].split("\nAnswer:", 1)[0].strip()


@pytest.fixture
def answering_server() -> Iterator[Callable[..., str]]:
    """``answering_server(wrong=set())`` -> the URL of a server (model "fake") answering each
    built-in question correctly ("The answer is 7.") except the questions in ``wrong``. It
    records every request body, with its path, in ``requests``."""

    def start(wrong: frozenset[str] = frozenset(), requests: list[Any] | None = None) -> str:
        def answer(body: dict[str, Any]) -> str:
            question = _question(body)
            text = "no idea" if question in wrong else f"The answer is {ANSWERS[question]}."
            return text if "messages" in body else " " + text

        config = FakeConfig(
            model="fake", answer=answer, requests=[] if requests is None else requests
        )
        return servers.enter_context(FakeOpenAI(config)).url

    with ExitStack() as servers:
        yield start
