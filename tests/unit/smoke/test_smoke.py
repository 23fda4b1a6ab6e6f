"""Smoke checks against the fake server: a correct server passes every protocol check; each
deliberate fault fails the matching check; quality checks stay apart."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fake_openai import FakeConfig, FakeOpenAI, Faults

from adaptgate.smoke import CheckStatus, ServerUnreachable, SmokeOptions, run_smoke
from adaptgate.smoke.models import SmokeResult
from adaptgate.smoke.protocol import pick_stop
from adaptgate.smoke.quality import cjk_ratio, schema_problems, split_answer

PROTOCOL = {
    "models",
    "chat",
    "completion",
    "stream_matches",
    "concurrent_identical",
    "max_tokens",
    "stop_strings",
    "usage",
    "chat_template",  # SKIPPED here: it needs the source checkpoint (test_differential.py)
}


def smoke(config: FakeConfig, **kw: object) -> SmokeResult:
    with FakeOpenAI(config) as fake:
        options = SmokeOptions(url=fake.url, model=config.model, api_key_env=None, **kw)  # type: ignore[arg-type]
        return run_smoke(options)


def failed(result: SmokeResult, category: str = "protocol") -> set[str]:
    return {c.id for c in result.checks if c.category == category and c.status is CheckStatus.FAIL}


def test_a_correct_server_passes_every_protocol_check() -> None:
    result = smoke(FakeConfig(), expected_max_model_len=4096)
    proto = {c.id: c for c in result.checks if c.category == "protocol"}
    assert set(proto) == PROTOCOL
    assert proto.pop("chat_template").status is CheckStatus.SKIPPED
    assert all(c.status is CheckStatus.PASS for c in proto.values()), {
        c.id: c.reason for c in proto.values() if c.status is not CheckStatus.PASS
    }
    assert result.verdict == "PASS" and result.exit_code == 0
    # a word-soup model fails the quality checks, which do not decide the verdict
    assert failed(result, "quality") == {"chinese", "arithmetic"}
    assert result.quality_verdict == "FAIL"
    for c in proto.values():
        assert c.evidence, c.id  # every verdict carries its evidence


def test_a_broken_chat_template_fails_the_chat_check() -> None:
    result = smoke(FakeConfig(faults=Faults(broken_chat_template=True)))
    assert "chat" in failed(result)
    chat = result.by_id("chat")
    assert chat is not None and "HTTP 400" in chat.reason.text
    assert "chat template" in (chat.evidence[0].response or "")
    assert result.by_id("completion").status is CheckStatus.PASS  # type: ignore[union-attr]
    assert result.verdict == "FAIL" and result.exit_code == 1


def test_a_server_ignoring_max_tokens_fails_that_check() -> None:
    result = smoke(FakeConfig(faults=Faults(ignore_max_tokens=True)))
    assert failed(result) == {"max_tokens"}
    check = result.by_id("max_tokens")
    assert check is not None
    assert (
        "finish_reason 'stop'" in check.reason.text and "20 tokens generated" in check.reason.text
    )


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("nondeterministic", "concurrent_identical"),
        ("stream_differs", "stream_matches"),
        ("bad_usage", "usage"),
    ],
)
def test_other_faults_fail_their_check(fault: str, check: str) -> None:
    result = smoke(FakeConfig(faults=Faults(**{fault: True})))
    assert check in failed(result)


def test_a_good_model_passes_the_quality_checks() -> None:
    result = smoke(FakeConfig(smart=True, thinking=True), tools=True, thinking=True)
    assert result.quality_verdict == "PASS", {
        c.id: c.reason for c in result.checks if c.category == "quality"
    }
    tool = result.by_id("tool_call")
    assert tool is not None and "Paris" in tool.reason.text


def test_quality_checks_skip_what_the_plan_does_not_enable() -> None:
    result = smoke(FakeConfig(smart=True), tools=False, thinking=False)
    assert result.by_id("tool_call").status is CheckStatus.SKIPPED  # type: ignore[union-attr]
    assert result.by_id("thinking").status is CheckStatus.SKIPPED  # type: ignore[union-attr]
    assert result.quality_verdict == "PASS"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    key = "sk-test-4242-do-not-print"
    monkeypatch.setenv("SMOKE_TEST_KEY", key)
    yield key


def test_api_key_is_sent_as_bearer_and_never_recorded(secret: str) -> None:
    config = FakeConfig(api_key=secret)
    with FakeOpenAI(config) as fake:
        result = run_smoke(SmokeOptions(url=fake.url, api_key_env="SMOKE_TEST_KEY"))
    assert result.verdict == "PASS"
    assert set(config.seen_auth) == {f"Bearer {secret}"}
    assert secret not in result.to_json()
    assert secret not in json.dumps(result.model_dump(mode="json"))


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TEST_KEY", raising=False)
    with FakeOpenAI(FakeConfig(api_key="k")) as fake, pytest.raises(ServerUnreachable) as info:
        run_smoke(SmokeOptions(url=fake.url, api_key_env="SMOKE_TEST_KEY"))
    assert "401" in info.value.message and info.value.fix


def test_nothing_listening_is_a_clear_error() -> None:
    from adaptgate.serve.process import free_port

    with pytest.raises(ServerUnreachable, match="nothing answers"):
        run_smoke(SmokeOptions(url=f"http://127.0.0.1:{free_port()}", api_key_env=None))


def test_wrong_max_model_len_fails_models() -> None:
    result = smoke(FakeConfig(max_model_len=2048), expected_max_model_len=4096)
    assert failed(result) == {"models"}


def test_only_and_skip_select_checks() -> None:
    result = smoke(FakeConfig(), only=["chat", "usage"])
    assert [c.id for c in result.checks] == ["chat", "usage"]
    from adaptgate.errors import UnknownKind

    with pytest.raises(UnknownKind):
        smoke(FakeConfig(), skip=["nope"])


def test_helpers() -> None:
    assert cjk_ratio("人工智能是 AI") > 0.6 > cjk_ratio("AI is 人工")
    assert split_answer({"content": "<think>a</think> b"}) == ("a", "b")
    assert split_answer({"content": "reasoning</think>answer"}) == ("reasoning", "answer")
    assert split_answer({"reasoning": "r", "content": "c"}) == ("r", "c")
    schema = {
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
        "additionalProperties": False,
    }
    assert schema_problems({"city": "Paris"}, schema) == []
    assert [p.text for p in schema_problems({"unit": "k", "x": 1}, schema)] == [
        "missing required 'city'",
        "'unit'='k' not in ['c', 'f']",
        "unexpected property 'x'",
    ]
    assert [p.text for p in schema_problems([1], schema)] == ["arguments are list, not an object"]
    stop, k = pick_stop(" the model serves tokens quickly") or ("", 0)
    assert stop and k >= 1 and " the model serves tokens quickly".find(stop) == k
    assert pick_stop("") is None
