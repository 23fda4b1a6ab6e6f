"""The hot-path HTTP/1.1 response de-framing, against h11 (an independent HTTP/1.1
implementation) writing the responses, with the bytes cut into reads at random places."""

from __future__ import annotations

import itertools
import random

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptgate.bench.backends.http import MAX_ERROR_BODY, ProtocolError, ResponseParser
from adaptgate.bench.timeline import Exchange


def h11_response(status: int, headers: list[tuple[str, str]], pieces: list[bytes]) -> bytes:
    """What a server built on h11 writes for a response with these body pieces."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    for piece in pieces:
        out += conn.send(h11.Data(data=piece)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


def feed(raw: bytes, cuts: list[int]) -> tuple[Exchange, ResponseParser, list[bool]]:
    ex = Exchange(0)
    parser = ResponseParser(ex)
    bounds = [0, *sorted(set(cuts)), len(raw)]
    done = [parser.feed(float(i), raw[a:b]) for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    return ex, parser, done


pieces_st = st.lists(st.binary(min_size=1, max_size=300), max_size=12)


@settings(max_examples=300, deadline=None)
@given(pieces=pieces_st, chunked=st.booleans(), data=st.data())
def test_body_and_read_times_survive_any_cut(
    pieces: list[bytes], chunked: bool, data: st.DataObject
) -> None:
    body = b"".join(pieces)
    headers = [("Content-Type", "text/event-stream")]
    framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body)))
    headers.append(framing)
    raw = h11_response(200, headers, pieces)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=20))
    ex, parser, done = feed(raw, cuts)
    assert ex.status == 200
    assert b"".join(d for _, d in ex.reads) == body
    assert done[-1] and not any(done[:-1])  # complete exactly at the last byte
    assert parser.keep_alive
    # each piece carries the time of the read that brought it; times never go back
    times = [t for t, _ in ex.reads]
    assert times == sorted(times)
    assert len(set(times)) == len(times)  # one entry per read, pieces of a read joined


def test_headers_time_is_the_read_that_completed_them() -> None:
    raw = h11_response(200, [("Transfer-Encoding", "chunked")], [b"data: x\n\n"])
    split = raw.index(b"\r\n\r\n") + 2  # the blank line arrives in the second read
    ex, _, _ = feed(raw, [split, split + 2])
    assert ex.headers_at == 1.0
    assert ex.reads[0][0] == 2.0


def test_chunk_extensions_trailers_and_uppercase_hex() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"1A;ext=1\r\n" + b"a" * 26 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ex, _, done = feed(head + body, [5, 50, 60])
    assert b"".join(d for _, d in ex.reads) == b"a" * 26 and done[-1]


def test_close_delimited_body_ends_at_eof() -> None:
    raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n"
    ex, parser, done = feed(raw, [10])
    assert not done[-1] and not parser.keep_alive
    assert parser.eof() and b"".join(d for _, d in ex.reads) == b"data: 1\n\n"


def test_interim_response_is_skipped_and_204_has_no_body() -> None:
    ex, _, done = feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", [])
    assert ex.status == 204 and done == [True]


def test_error_body_is_kept_truncated_not_streamed() -> None:
    body = b"x" * (MAX_ERROR_BODY + 500)
    raw = h11_response(503, [("Content-Length", str(len(body)))], [body])
    ex, _, done = feed(raw, [100, 1000])
    assert ex.status == 503 and ex.reads == [] and ex.body == body[:MAX_ERROR_BODY] and done[-1]


def test_connection_close_header_disables_reuse() -> None:
    raw = h11_response(200, [("Content-Length", "0"), ("Connection", "close")], [])
    _, parser, done = feed(raw, [])
    assert done == [True] and not parser.keep_alive


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "longer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "after the end"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 70000, "longer than"),
    ],
)
def test_protocol_errors_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        feed(raw, [len(raw) // 2])


def test_random_sse_stream_byte_by_byte() -> None:
    rng = random.Random(0)
    events = [f"data: {rng.random()}\n\n".encode() for _ in range(50)]
    raw = h11_response(200, [("Transfer-Encoding", "chunked")], events)
    ex, _, done = feed(raw, list(range(1, len(raw))))
    assert b"".join(d for _, d in ex.reads) == b"".join(events) and done[-1]
