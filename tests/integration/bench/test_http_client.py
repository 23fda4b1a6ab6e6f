"""The hot-path HTTP client against small misbehaving servers on a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from adaptgate.bench.backends import http
from adaptgate.bench.backends.http import HTTPClient
from adaptgate.bench.timeline import Exchange

pytestmark = pytest.mark.timeout(60)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


def run(handler: Handler, body: Callable[[HTTPClient], Awaitable[None]], **kw: float) -> None:
    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = HTTPClient(
            f"http://127.0.0.1:{port}/base", timeout_s=kw.get("timeout_s", 5.0),
            read_timeout_s=kw.get("read_timeout_s"),
        )  # fmt: skip
        try:
            await body(client)
        finally:
            await client.close()
            server.close()

    asyncio.run(main())


def test_requests_reuse_connections_and_carry_the_base_path() -> None:
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                seen.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                return
            writer.write(OK)
            await writer.drain()

    async def body(client: HTTPClient) -> None:
        req = client.request("POST", "/v1/completions", {"X-Test": "1"}, b'{"a":1}')
        exchanges = [Exchange(i) for i in range(5)]
        for ex in exchanges:
            await client.send(req, ex)
        assert all(ex.status == 200 and ex.error is None for ex in exchanges)
        assert [b"".join(d for _, d in ex.reads) for ex in exchanges] == [b"hi"] * 5

    run(handler, body)
    assert connections == 1
    assert all(r.startswith(b"POST /base/v1/completions HTTP/1.1\r\n") for r in seen)
    assert seen[0].endswith(b'Content-Length: 7\r\n\r\n{"a":1}') and b"X-Test: 1" in seen[0]


def test_a_stale_keep_alive_connection_is_retried_once() -> None:
    """Each connection answers one request, then closes when the next arrives (the race a
    server's keep-alive timeout makes): that request never reached the server, so it is sent
    again on a fresh connection and does not count as a failure."""
    answered = dropped = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered, dropped
        await read_request(reader)
        writer.write(OK)
        answered += 1
        await writer.drain()
        await read_request(reader)
        dropped += 1
        writer.transport.abort()

    async def body(client: HTTPClient) -> None:
        req = client.request("GET", "/health", {})
        for i in range(4):
            ex = Exchange(i)
            await client.send(req, ex)
            assert ex.error is None and ex.status == 200, ex.error_detail

    run(handler, body)
    assert answered == 4 and dropped == 3


@pytest.mark.parametrize(
    ("reply", "error", "detail"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "server_disconnected",
            "closed",
        ),
        (b"garbage\r\n\r\n", "bad_response", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "server_disconnected", "closed"),
        (b"", "server_disconnected", "closed"),  # a fresh connection: not retried
    ],
)
def test_broken_responses_are_failures_by_reason(reply: bytes, error: str, detail: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def body(client: HTTPClient) -> None:
        ex = Exchange(0)
        await client.send(client.request("GET", "/", {}), ex)
        assert ex.error == error and detail in (ex.error_detail or "")
        assert ex.end_at is not None and ex.sent_at is not None

    run(handler, body)


def test_silence_after_headers_hits_the_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "SWEEP_INTERVAL_S", 0.05)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async def body(client: HTTPClient) -> None:
        ex = Exchange(0)
        await client.send(client.request("GET", "/", {}), ex)
        assert ex.error == "timeout" and "no bytes for 0.3 s" in (ex.error_detail or "")
        assert ex.headers_at is not None and ex.end_at - ex.sent_at < 2  # type: ignore[operator]

    run(handler, body, read_timeout_s=0.3)


def test_nothing_listening_is_a_connect_error() -> None:
    async def main() -> None:
        client = HTTPClient("http://127.0.0.1:9", timeout_s=5, read_timeout_s=None)
        ex = Exchange(0)
        await client.send(client.request("GET", "/", {}), ex)
        await client.close()
        assert ex.error == "connect_error" and "Connect" in (ex.error_detail or "")

    asyncio.run(main())
