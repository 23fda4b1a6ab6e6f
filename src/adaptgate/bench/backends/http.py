"""A minimal HTTP/1.1 client for the benchmark's hot path.

Keep-alive connections; a request is written as one pre-built byte string; every socket read is
stamped inside the protocol's ``data_received`` callback, before anything else runs, so a
timestamp waits for nothing but the event loop's wakeup. The response is de-framed
(Content-Length, chunked, or until close) as it arrives, and each piece of body keeps the stamp of
the read that carried it.

Why not aiohttp here: its request machinery (request objects, header multidicts, stream readers,
a future per read) adds about a millisecond to every request's measured TTFT on these machines
(benchmarks/bench_client_overhead.py). aiohttp still does everything off the hot path: probing,
``/tokenize``, ``/metrics``.

Failures land in the :class:`~adaptgate.bench.timeline.Exchange` as a reason category and a
detail: ``connect_error``, ``timeout``, ``server_disconnected``, ``bad_response``,
``transport_error``. Timeouts are checked by one sweep per client every
:data:`SWEEP_INTERVAL_S`, not by a timer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from urllib.parse import urlsplit

from adaptgate.bench.timeline import Exchange

MAX_HEAD = 64 * 1024
MAX_ERROR_BODY = 2000
SWEEP_INTERVAL_S = 0.25
_clock = time.monotonic


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response."""


class ResponseParser:
    """Incremental HTTP/1.1 response de-framing into an Exchange: status, ``headers_at``, body
    pieces as ``(read time, bytes)`` (200) or the start of an error body (other statuses)."""

    __slots__ = ("buf", "crlf", "done", "ex", "head_done", "keep_alive", "left", "mode", "trailer")

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.buf = b""
        self.head_done = False
        self.mode = ""  # "length" | "chunked" | "close"
        self.left = 0  # bytes left: of the body (length) or of the current chunk (chunked)
        self.crlf = False  # chunked: a chunk's data ended; its CRLF is due
        self.trailer = False  # chunked: the last chunk came; trailer lines until an empty one
        self.keep_alive = True
        self.done = False

    def feed(self, t: float, data: bytes) -> bool:
        """Consume one read; True once the response is complete."""
        if not self.head_done:
            data = self._head(t, self.buf + data)
            if self.done or not data:
                return self.done
        if self.mode == "length":
            take = data[: self.left]
            self.left -= len(take)
            self._emit(t, take)
            if len(data) > len(take):
                raise ProtocolError("bytes after the end of the response")
            self.done = self.left == 0
        elif self.mode == "chunked":
            self._chunked(t, self.buf + data if self.buf else data)
        else:
            self._emit(t, data)
        return self.done

    def eof(self) -> bool:
        """The connection closed: True if that completes the response (close-delimited body)."""
        self.done = self.done or (self.head_done and self.mode == "close")
        return self.done

    def _emit(self, t: float, data: bytes) -> None:
        if not data:
            return
        ex = self.ex
        if ex.status == 200:
            ex.reads.append((t, data))
        elif len(ex.body) < MAX_ERROR_BODY:
            ex.body += data[: MAX_ERROR_BODY - len(ex.body)]

    def _head(self, t: float, buf: bytes) -> bytes:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolError(f"response headers longer than {MAX_HEAD} bytes")
            self.buf = buf
            return b""
        self.buf = b""
        lines = buf[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"malformed header line: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        status = int(code)
        if 100 <= status < 200:  # an interim response: the real one follows
            return self._head(t, buf[end + 4 :])
        self.ex.status, self.ex.headers_at, self.head_done = status, t, True
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.mode = "chunked"
        elif "content-length" in headers:
            try:
                self.mode, self.left = "length", int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length: {headers['content-length']!r}") from None
            self.done = self.left == 0
        elif status in (204, 304):
            self.done = True
        else:
            self.mode, self.keep_alive = "close", False
        return buf[end + 4 :]

    def _chunked(self, t: float, buf: bytes) -> None:
        pos, n, pieces = 0, len(buf), []
        while pos < n:
            if self.left:
                piece = buf[pos : pos + self.left]
                pieces.append(piece)
                pos += len(piece)
                self.left -= len(piece)
                if self.left:
                    break
                self.crlf = True
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if n - pos > MAX_HEAD:
                    raise ProtocolError("chunk size line too long")
                break
            line = buf[pos:end]
            pos = end + 2
            if self.crlf:
                if line:
                    raise ProtocolError("chunk data longer than its declared size")
                self.crlf = False
            elif self.trailer:
                if not line:  # the empty line after the trailers: done
                    self.done = True
                    if pos < n:
                        raise ProtocolError("bytes after the end of the response")
                    break
            else:
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line: {line[:40]!r}") from None
                if size == 0:
                    self.trailer = True
                else:
                    self.left = size
        self.buf = buf[pos:]
        if pieces:
            self._emit(t, pieces[0] if len(pieces) == 1 else b"".join(pieces))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries at most one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.parser: ResponseParser | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0
        self.received = False  # any byte for the current request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        t = _clock()
        parser = self.parser
        if parser is None:  # bytes nobody asked for: this connection is not usable
            self.abort()
            return
        self.last_read, self.received = t, True
        try:
            if parser.feed(t, data):
                self._finish(None, None)
        except ProtocolError as exc:
            self._finish("bad_response", f"ProtocolError: {exc}")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.parser is not None:
            if self.parser.eof():
                self._finish(None, None)
            else:
                how = f": {exc}" if exc else ""
                self._finish("server_disconnected", f"the server closed the connection{how}")

    def start(self, ex: Exchange, waiter: asyncio.Future[None], request: bytes) -> None:
        self.parser, self.waiter, self.received = ResponseParser(ex), waiter, False
        self.last_read = _clock()
        assert self.transport is not None
        self.transport.write(request)

    def _finish(self, error: str | None, detail: str | None) -> None:
        parser, waiter = self.parser, self.waiter
        if parser is None or waiter is None:
            return
        self.parser = self.waiter = None
        ex = parser.ex
        ex.end_at = _clock()
        if error is not None and ex.error is None:
            ex.error, ex.error_detail = error, detail
        if not parser.keep_alive and not self.closed:
            self.abort()
        if not waiter.done():
            waiter.set_result(None)

    def fail(self, error: str, detail: str) -> None:
        """End the current request with ``error`` and drop the connection."""
        self._finish(error, detail)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.parser is None


class HTTPClient:
    """Keep-alive HTTP/1.1 connections to one server, no cap on their number (a cap would
    queue requests invisibly), and the hot-path :meth:`send`."""

    def __init__(self, url: str, *, timeout_s: float, read_timeout_s: float | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = (parts.scheme == "https" and self.port == 443) or self.port == 80
        self.authority = host if default else f"{host}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        self.timeout_s, self.read_timeout_s = timeout_s, read_timeout_s
        self.idle: list[_Connection] = []
        self.busy: dict[_Connection, float] = {}  # in flight -> when its request was sent
        self._sweeper: asyncio.Task[None] | None = None

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
        """The bytes of one request (build them before the run)."""
        lines = [f"{method} {self.base_path}{path} HTTP/1.1", f"Host: {self.authority}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += ["Accept-Encoding: identity", f"Content-Length: {len(body)}", "", ""]
        return "\r\n".join(lines).encode("latin-1") + body

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection,
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl else None,
        )
        return conn

    async def send(self, request: bytes, ex: Exchange) -> None:
        """Send ``request`` and stream the response into ``ex``; failures are recorded in it,
        never raised (cancellation is recorded, then re-raised)."""
        ex.sent_at = _clock()
        for attempt in (0, 1):
            conn = self._idle()
            reused = conn is not None
            if conn is None:
                try:
                    conn = await asyncio.wait_for(self._connect(), self.timeout_s)
                except TimeoutError:
                    ex.error, ex.error_detail = "timeout", "connecting timed out"
                except OSError as exc:
                    ex.error, ex.error_detail = "connect_error", f"{type(exc).__name__}: {exc}"
                if conn is None:
                    ex.end_at = _clock()
                    return
            await self._exchange(conn, request, ex)
            # A reused connection the server had already closed (its keep-alive timeout) fails
            # before any byte of a response: that request never reached the server; retry once.
            retry = ex.error == "server_disconnected" and not conn.received
            if not (reused and attempt == 0 and retry):
                break
            ex.error = ex.error_detail = ex.end_at = None
            ex.body = b""

    def _idle(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable:
                return conn
        return None

    async def _exchange(self, conn: _Connection, request: bytes, ex: Exchange) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.busy[conn] = _clock()
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())
        try:
            conn.start(ex, waiter, request)
            await waiter
        except asyncio.CancelledError:
            conn.fail("cancelled", "the run was interrupted")
            raise
        finally:
            self.busy.pop(conn, None)
        if conn.reusable:
            self.idle.append(conn)

    async def _sweep(self) -> None:
        """Fail requests past the whole-request timeout or silent past the read timeout."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            now = _clock()
            for conn, sent in list(self.busy.items()):
                if now - sent > self.timeout_s:
                    conn.fail("timeout", f"no complete response within {self.timeout_s:g} s")
                elif self.read_timeout_s and now - conn.last_read > self.read_timeout_s:
                    conn.fail("timeout", f"no bytes for {self.read_timeout_s:g} s")

    async def prewarm(self, n: int, request: bytes) -> None:
        """Open ``n`` connections before the run, each proven with ``request`` (a cheap GET);
        failures are left to the run to report."""

        async def one() -> None:
            ex = Exchange(-1)
            await self.send(request, ex)

        await asyncio.gather(*(one() for _ in range(max(1, n))))

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in [*self.idle, *self.busy]:
            conn.abort()
        self.idle.clear()
