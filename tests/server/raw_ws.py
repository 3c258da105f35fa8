"""A WebSocket client that can stop reading, as a stuck or hostile client does.

The `websockets` client reads in the background; this one reads only when
asked, through a receive buffer a few kilobytes small, so the server's sends
soon find TCP full. Frames are parsed just enough for our `/ws` (text, close,
ping; no fragments, no extensions), and pings are never answered.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

TEXT, CLOSE, PING = 0x1, 0x8, 0x9


class RawSocket:
    def __init__(self, ws_url: str, receive_buffer: int = 4096) -> None:
        parts = urlsplit(ws_url)
        self.sock = socket.socket()
        # Before connect, so the window the server sees is small from the start.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(5)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n", deadline=time.monotonic() + 5)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"no upgrade: {head[:60]!r}")

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode())

    def send_frame(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(frame_bytes(opcode, payload))

    def send_texts_at_once(self, *texts: str) -> None:
        """Several text frames in one write, so the server reads them together."""
        self.sock.sendall(b"".join(frame_bytes(TEXT, text.encode()) for text in texts))

    def auth(self, api_key: str) -> dict[str, Any]:
        self.send_text(json.dumps({"type": "auth", "api_key": api_key}))
        opcode, payload = self.next_frame(time.monotonic() + 5)
        assert opcode == TEXT, (opcode, payload)
        return json.loads(payload)

    def next_frame(self, deadline: float) -> tuple[int, bytes]:
        """The next frame (pings skipped, unanswered); raises EOFError once the stream ends."""
        while True:
            first, second = self._read(2, deadline)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2, deadline))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8, deadline))
            payload = self._read(length, deadline)
            opcode = first & 0x0F
            if opcode != PING:
                return opcode, payload

    def drain(self, timeout: float = 20) -> tuple[list[dict[str, Any]], int | None]:
        """Read to the end: the text frames, and the close code (None if the server cut
        the connection off without one reaching us)."""
        deadline = time.monotonic() + timeout
        frames: list[dict[str, Any]] = []
        try:
            while True:
                opcode, payload = self.next_frame(deadline)
                if opcode == CLOSE:
                    return frames, struct.unpack("!H", payload[:2])[0] if payload else 1005
                frames.append(json.loads(payload))
        except (EOFError, ConnectionResetError):
            return frames, None

    def _read(self, count: int, deadline: float) -> bytes:
        while len(self._buffer) < count:
            self._fill(deadline)
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self._buffer:
            self._fill(deadline)
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server before the deadline")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise EOFError
        self._buffer += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frame_bytes(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00" + payload  # a zero mask is a valid mask
