"""A round-robin TCP proxy on loopback: the reverse proxy of a deployment, as a plain
process-local thread, for tests that run several server processes behind one address.

Each client connection goes to the next backend in turn (no stickiness, like the
nginx of `deploy/`); a backend that refuses the connection is skipped, so clients
of a killed server reconnect to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Sequence

from tests.loopback import listening_socket

CONNECT_TIMEOUT = 2.0


class RoundRobinProxy:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.port = 0
        self.connections = [0] * len(self.backends)  # per backend, for tests to check

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> RoundRobinProxy:
        sock = listening_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        ready = threading.Event()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            server = await asyncio.start_server(self._client, sock=sock, backlog=512)
            ready.set()
            async with server:
                await self._stopped.wait()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> RoundRobinProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect_next()
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )
        for end in (writer, up_writer):
            with contextlib.suppress(Exception):
                end.close()

    async def _connect_next(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.backends:
            index = next(self._turn)
            host, port = self.backends[index]
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    connection = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                continue  # down: the next one takes the client
            self.connections[index] += 1
            return connection
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until the reader ends, then pass the end on (a half close).

    When the receiving side is gone, what still comes is read and dropped until its
    sender ends too, as a proxy's lingering close does: closing at once would reset
    the connection and could destroy an answer already sent (a server's 413 to a
    client still uploading the body)."""
    try:
        while data := await reader.read(65536):
            if writer.is_closing():
                continue
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                writer.close()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()
