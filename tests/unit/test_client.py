"""The OpenAI-compatible client against the smoke tests' fake server: replies that never raise,
errors that say what failed (and never show the API key), vLLM's completion extensions and
their fallback, streams, and the ``token_id:N`` parsing."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "smoke"))  # the fake server lives beside them
from fake_openai import FakeConfig, FakeOpenAI, Faults

from adaptgate.client import (
    Client,
    Reply,
    choice_of,
    message_of,
    reasoning_of,
    stream_usage,
    streamed_text,
    token_ids,
    top_ids,
)
from adaptgate.errors import ServerUnreachable

KEY = "sk-client-test-4242-do-not-print"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(FakeConfig(version="0.9.2")) as server:
        yield server


@pytest.fixture
def nothing_listens() -> Iterator[str]:
    """A URL where a port is bound but nobody listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_models_and_version(fake: FakeOpenAI) -> None:
    client = Client(fake.url, api_key_env=None, timeout_s=5)
    assert client.model_ids() == ["tiny"]
    assert client.version() == "0.9.2"
    assert Client(fake.url + "/v1/").model_ids() == ["tiny"]  # a /v1 base URL is accepted
    fake.config.version = None
    assert client.version() is None  # 404: the server does not say


def test_a_reply_records_the_exchange_and_never_raises(
    fake: FakeOpenAI, nothing_listens: str
) -> None:
    client = Client(fake.url, api_key_env=None)
    body = {"model": "tiny", "prompt": "hello", "max_tokens": 3}
    reply = client.post("/v1/completions", body)
    assert reply.ok and reply.status == 200 and reply.body == body
    assert choice_of(reply)["finish_reason"] == "length"
    missing = client.get("/nowhere")
    assert (missing.status, missing.error, missing.ok) == (404, "HTTP 404", False)
    assert missing.data == {"error": {"message": "not found"}}  # an error's JSON is kept
    down = Client(nothing_listens).get("/health")
    assert down.status == 0 and down.error and "refused" in down.error.lower()


def test_a_silent_server_times_out_as_no_answer() -> None:
    with socket.socket() as s:  # accepts connections (the backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        client = Client(f"http://127.0.0.1:{s.getsockname()[1]}", timeout_s=0.3)
        reply = client.get("/v1/models")
        assert reply.status == 0 and reply.error and "timed out" in reply.error
        with pytest.raises(ServerUnreachable, match=r"GET /v1/models at .* failed"):
            client.model_ids()


def test_errors_say_what_failed(fake: FakeOpenAI, nothing_listens: str) -> None:
    with pytest.raises(ServerUnreachable, match=r"GET /v1/models at .* failed") as info:
        Client(nothing_listens).model_ids()
    assert info.value.exit_code == 2 and info.value.fix
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(ServerUnreachable, match=r"HTTP 404: .*model other unknown"):
        Client(fake.url, api_key_env=None).complete("other", [1, 2], 2, 1)


def test_the_api_key_is_sent_and_never_shown(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.config.api_key, fake.config.echo_auth = KEY, True
    monkeypatch.setenv("CLIENT_TEST_KEY", KEY)
    client = Client(fake.url, api_key_env="CLIENT_TEST_KEY")
    assert client.model_ids() == ["tiny"]
    assert fake.config.seen_auth[-1] == f"Bearer {KEY}"
    assert KEY not in repr(vars(client))  # read at each request, never stored
    # a wrong key: the server quotes the header it refused, the client masks it
    fake.config.api_key = "another-key"
    with pytest.raises(ServerUnreachable, match="HTTP 401") as info:
        client.model_ids()
    assert fake.config.seen_auth[-1] == f"Bearer {KEY}"
    assert "Bearer ***" in str(info.value)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    reply = client.get("/v1/models")
    assert KEY not in reply.text and KEY not in repr(reply)


def test_complete_reads_vllm_logprobs(fake: FakeOpenAI) -> None:
    client = Client(fake.url, api_key_env=None)
    done = client.complete("tiny", [5, 6, 7], 4, 2, ignore_eos=True)
    ids = token_ids(done.tokens)
    assert ids is not None and len(ids) == 4
    assert done.token_logprobs == [-0.25] * 4
    assert top_ids(done.top_logprobs[0]) == {ids[0]: -0.25, 0: -2.0}
    assert done.prompt_logprobs == [None, {"6": -1.5}, {"7": -1.5}]
    assert done.finish_reason == "length" and done.raw_usage["completion_tokens"] == 4
    assert done.text is not None and len(done.text) > 0
    assert client.extensions


def test_a_server_refusing_the_extensions_is_asked_again_without_them() -> None:
    with FakeOpenAI(FakeConfig(faults=Faults(no_extensions=True))) as fake:
        client = Client(fake.url, api_key_env=None)
        done = client.complete("tiny", [5, 6], 3, 1)
        assert not client.extensions  # not sent again
        assert token_ids(done.tokens) is None  # token texts: no ids to compare
        assert done.prompt_logprobs is None and len(done.tokens) == 3
        assert client.complete("tiny", [5, 6], 3, 1).tokens == done.tokens


def test_an_answer_without_choices_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client("http://127.0.0.1:9", api_key_env=None)
    answer = Reply("POST", "/v1/completions", None, status=200, data={"object": "list"})
    monkeypatch.setattr(client, "post", lambda path, body: answer)
    with pytest.raises(ServerUnreachable, match="has no logprobs"):
        client.complete("tiny", [1], 1, 1)


def test_streams_match_the_plain_answer(fake: FakeOpenAI) -> None:
    client = Client(fake.url, api_key_env=None)
    body = {"model": "tiny", "prompt": "stream me", "max_tokens": 6}
    plain = choice_of(client.post("/v1/completions", body))["text"]
    streamed = client.stream("/v1/completions", {**body, "stream_options": {"include_usage": True}})
    assert streamed.done and streamed.body and streamed.body["stream"] is True
    assert streamed_text(streamed, chat=False) == (plain, "", "length")
    assert stream_usage(streamed) == {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8}


def test_chat_answers_are_read() -> None:
    with FakeOpenAI(FakeConfig(smart=True, thinking=True)) as fake:
        client = Client(fake.url, api_key_env=None)
        body = {"model": "tiny", "messages": [{"role": "user", "content": "9.11 or 9.8?"}]}
        message = message_of(client.post("/v1/chat/completions", body))
        assert message["content"] == "9.8 is larger." and "9.80" in reasoning_of(message)
        chat = client.stream("/v1/chat/completions", body)
        assert streamed_text(chat, chat=True) == ("9.8 is larger.", reasoning_of(message), "stop")
    assert reasoning_of({"reasoning": "newer vLLM"}) == "newer vLLM"


def test_token_keys() -> None:
    assert top_ids({"token_id:5": -0.1, "token_id:7": -2.0}) == {5: -0.1, 7: -2.0}
    assert top_ids({"12": -0.5}) == {12: -0.5}  # vLLM prompt_logprobs keys
    assert top_ids({"hello": -0.5}) is None  # text tokens: not comparable by id
    assert token_ids(["token_id:3", "token_id:11"]) == [3, 11]
    assert token_ids(["token_id:3", "hello"]) is None
    assert token_ids(["token_id:x"]) is None
