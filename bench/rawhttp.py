"""A lean HTTP/1.1 keep-alive client for the benchmarks' hot loop.

httpx spends more CPU per request than the server does per send; on two shared
cores the load client would then measure itself. This one writes the request
bytes by hand and reads a `Content-Length` answer, nothing else: enough for
`POST /messages/send` against our own server, not a general client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

# uvicorn closes a keep-alive connection idle for 5 s; one idle this long is not reused.
MAX_IDLE_SECONDS = 3.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


class RawClient:
    """Keep-alive connections to one server: one per request in flight, reused."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []

    async def post_json(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        connection = await self._take()
        try:
            answer = await connection.request(head, body)
        except BaseException:
            self._discard(connection)
            raise
        connection.last_used = time.monotonic()
        self._idle.append(connection)
        return answer

    async def _take(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if time.monotonic() - connection.last_used < MAX_IDLE_SECONDS:
                return connection
            self._discard(connection)
        return await self._open()

    def _discard(self, connection: _Connection) -> None:
        connection.writer.close()
        self._all.remove(connection)

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = _Connection(reader, writer)
        self._all.append(connection)
        return connection

    async def close(self) -> None:
        for connection in self._all:
            connection.writer.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
        self._all.clear()
        self._idle.clear()
