import json

import pytest

from adaptgate.bench.sse import MalformedChunk, SSEEvent, parse_chunk, parse_stream, split_events


def _data(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def test_events_take_the_time_of_the_read_that_completes_them():
    first = _data({"choices": [{"text": "a"}]})
    reads = [
        (1.0, first[:10]),
        (2.0, first[10:] + b": keepalive\n\n" + b"data: [DO"),
        (3.0, b"NE]\r\n\r\n"),
    ]
    events, rest = split_events(reads)
    assert [(e.t, e.data) for e in events] == [
        (2.0, json.dumps({"choices": [{"text": "a"}]})),
        (3.0, "[DONE]"),
    ]
    assert rest == b""


def test_unterminated_event_is_left_over():
    events, rest = split_events([(1.0, b'data: {"choices": []}\n\ndata: {"cho')])
    assert len(events) == 1 and rest == b'data: {"cho'


def test_chunk_kinds():
    role = parse_chunk(
        SSEEvent(1, json.dumps({"choices": [{"delta": {"role": "assistant", "content": ""}}]}))
    )
    assert role.has_choices and not role.carries_token
    think = parse_chunk(
        SSEEvent(2, json.dumps({"choices": [{"delta": {"reasoning_content": "hm"}}]}))
    )
    assert think.carries_token and think.reasoning == "hm" and think.text == ""
    answer = parse_chunk(
        SSEEvent(
            3, json.dumps({"choices": [{"delta": {"content": "x"}, "finish_reason": "length"}]})
        )
    )
    assert answer.text == "x" and answer.finish_reason == "length"
    usage = parse_chunk(SSEEvent(4, json.dumps({"choices": [], "usage": {"completion_tokens": 3}})))
    assert not usage.has_choices and usage.usage == {"completion_tokens": 3}
    err = parse_chunk(SSEEvent(5, json.dumps({"error": {"message": "boom"}})))
    assert err.error == "boom"


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"choices": 3}'])
def test_malformed(data):
    with pytest.raises(MalformedChunk):
        parse_chunk(SSEEvent(1, data))


def test_parse_stream_stops_at_done_and_records_malformed():
    reads = [
        (1.0, _data({"choices": [{"text": "a"}]}) + b"data: {oops\n\n"),
        (2.0, b"data: [DONE]\n\n" + _data({"choices": [{"text": "late"}]})),
    ]
    parsed = parse_stream(reads)
    assert parsed.done and len(parsed.chunks) == 1 and parsed.malformed
