"""Loopback servers for the test doubles that run in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from tests.waiting import wait_until_async

STARTUP_TIMEOUT = 10.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (port 0: a free one).

    IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    the listening socket says so; without it Nagle adds 40 ms to every reply.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


class BackgroundServer:
    """uvicorn serving an ASGI app in a daemon thread, on a loopback socket: how the
    test doubles (the fake OpenClaw gateway, the scripted model) run beside a test.

    ``stopping`` is an event of the server's own loop, set as soon as ``stop()``
    begins, so that a handler sleeping on purpose (a fake's delay) ends at once.
    """

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name
        self.stopping: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, host: str, port: int) -> int:
        """Serve on ``port`` (0: a free one); the port. Raises RuntimeError if it does
        not start within ``STARTUP_TIMEOUT``."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        sock = listening_socket(host, port)
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            lifespan="off",
            http="httptools",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self.stopping = asyncio.Event()
            task = asyncio.create_task(server.serve(sockets=[sock]))
            # uvicorn has no "started" event to wait on, only this flag
            await wait_until_async(
                lambda: server.started or task.done(),
                within=STARTUP_TIMEOUT,
                what=f"{self.name} to start",
                every=0.01,
            )
            ready.set()
            await task

        def run() -> None:
            try:
                asyncio.run(serve())
            except BaseException as exc:  # reported to start() or lost at exit
                failure.append(exc)
            finally:
                ready.set()

        self._server = server
        self._thread = threading.Thread(target=run, name=f"{self.name}-{port}", daemon=True)
        self._thread.start()
        if not ready.wait(STARTUP_TIMEOUT) or failure or not server.started:
            self.stop()
            sock.close()
            raise RuntimeError(f"{self.name} did not start: {failure!r}")
        return port

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        server, thread, loop, stopping = self._server, self._thread, self._loop, self.stopping
        if server is None or thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stopping.set)
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop")
        self._server = self._thread = self._loop = self.stopping = None
