"""A lean WebSocket client for the benchmarks' receivers: text frames in, acks out.

The `websockets` library (which the bridge uses) spends more CPU per frame and
per ack than the server does on an ack; on two shared cores the load client
would then measure itself. This one reads the server's unmasked frames off an
asyncio stream and writes each ack as one pre-built frame. The frames on the
wire are the same, so the server does the same work. Not a general client: no
fragmentation, no extensions, just enough for our `/ws`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA
# Clients must mask; an all-zero key is a valid key and leaves the payload as it is.
_ZERO_MASK = b"\x00\x00\x00\x00"


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + _ZERO_MASK + payload


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, url: str, receive_buffer: int | None = None) -> RawWebSocket:
        """`receive_buffer` (bytes) shrinks the socket's receive buffer, as a client that
        stops reading has: the server's sends then soon find TCP full."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if receive_buffer is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"no WebSocket upgrade: {answer[:80]!r}")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        """Queue one text frame (no await: the transport buffers it)."""
        self._writer.write(frame(_TEXT, text.encode()))

    async def recv_text(self) -> str | None:
        """The next text message, or None once the server closed."""
        read = self._reader.readexactly
        while True:
            first, second = await read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await read(8))
            payload = await read(length) if length else b""
            opcode = first & 0x0F
            if opcode == _TEXT:
                return payload.decode()
            if opcode == _PING:
                self._writer.write(frame(_PONG, payload))
            elif opcode == _CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                return None

    async def close(self) -> None:
        try:
            self._writer.write(frame(_CLOSE, struct.pack("!H", 1000)))
            self._writer.close()
            await self._writer.wait_closed()
        except OSError:
            pass
