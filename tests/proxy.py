"""A round-robin TCP proxy on loopback: the reverse proxy of a deployment, in plain
threads, for tests that run several server processes behind one address.

Each client connection goes to the next backend in turn (no stickiness, like the
nginx of `deploy/`); a backend that refuses the connection is skipped, so clients
of a killed server reconnect to the others. Blocking sockets, two threads per
connection: nothing to schedule, nothing left behind for the garbage collector.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Sequence

from tests.loopback import listening_socket

CONNECT_TIMEOUT = 2.0
CHUNK = 65536


class RoundRobinProxy:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._turn_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._stopping = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> RoundRobinProxy:
        self._listener = listening_socket("127.0.0.1", 0)
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._listener is not None:
            # shutdown wakes the blocked accept(); close alone would not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._accepting is not None:
            self._accepting.join(10)
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> RoundRobinProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect_next()
        if upstream is None:
            _close(client)
            return
        with self._open_lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        with self._open_lock:
            self._open.difference_update((client, upstream))
        _close(client)
        _close(upstream)

    def _connect_next(self) -> socket.socket | None:
        for _ in self.backends:
            with self._turn_lock:
                index = next(self._turn)
            try:
                upstream = socket.create_connection(self.backends[index], CONNECT_TIMEOUT)
            except OSError:
                continue  # down: the next one takes the client
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return upstream
        return None


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until the source ends, then pass the end on (a half close).

    When the sink is gone, what still comes is read and dropped until the source
    ends too, as a proxy's lingering close does: closing at once would reset the
    connection and could destroy an answer already sent (a server's 413 to a client
    still uploading the body)."""
    sink_open = True
    try:
        while data := source.recv(CHUNK):
            if sink_open:
                try:
                    sink.sendall(data)
                except OSError:
                    sink_open = False
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
