"""Loopback sockets for the test doubles that serve in a background thread."""

from __future__ import annotations

import socket


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
