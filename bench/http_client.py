"""A minimal HTTP/1.1 client for load benchmarks: kept-alive connections, JSON posts.

On a two-core machine the clients share the cores with the server they measure, so what the
client spends per request is taken from the server. httpx spends about 4.5 ms of CPU on a
request here (measured beside the API's own 20 ms); this client, which does nothing but write
the request and read the answer, well under one. Not for production use: no TLS, no redirects,
one request at a time per connection, responses with a body (not 204 or 304).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

# A request not answered in this time fails (the benchmark stops instead of hanging).
REQUEST_TIMEOUT_SECONDS = 60.0


class HttpError(Exception):
    """A response outside 2xx."""


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        status_line = await self._send(head + body)
        if not status_line and reused:
            # The server closed the kept-alive connection while it was idle (its keep-alive
            # timeout): nothing of this request was answered, so it goes again on a new one.
            self.close()
            status_line = await self._send(head + body)
        if not status_line:
            raise ConnectionError("the server closed the connection without answering")
        assert self.reader is not None
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.lower() == b"close":
                close = True
        if chunked:
            content = await self._read_chunks()
        elif length is not None:
            content = await self.reader.readexactly(length)
        else:  # the body ends with the connection
            content, close = await self.reader.read(), True
        if close:
            self.close()
        return status, content

    async def _send(self, request: bytes) -> bytes:
        """Write the request (connecting first if needed); the status line, or b"" if the
        connection was closed before it."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(request)
            return await self.reader.readline()
        except ConnectionResetError:
            return b""

    async def _read_chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()
        while await self.reader.readline() not in (b"\r\n", b""):  # trailers
            pass
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class KeepAliveClient:
    """Up to ``connections`` kept-alive connections to ``base_url``, one request at a time on
    each; ``headers`` go with every request."""

    def __init__(self, base_url: str, *, headers: dict[str, str], connections: int) -> None:
        parts = urlsplit(base_url)
        assert parts.scheme == "http" and parts.hostname and parts.port
        self._host_header = f"{parts.hostname}:{parts.port}"
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(_Connection(parts.hostname, parts.port))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        connection = await self._idle.get()
        try:
            yield connection
        except BaseException:
            connection.close()  # its state is unknown: the next request opens a new one
            raise
        finally:
            self._idle.put_nowait(connection)

    async def post_json(self, path: str, payload: Any) -> Any:
        """POST ``payload`` as JSON; the decoded answer. Raises :class:`HttpError` if not 2xx."""
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host_header}\r\n{self._extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self._connection() as connection, asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            status, content = await connection.request(head, body)
        if not 200 <= status < 300:
            raise HttpError(f"{status}: {content[:200]!r}")
        return json.loads(content)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
