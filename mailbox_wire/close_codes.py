"""The WebSocket close codes of `/ws` (contract section 5), in one place for both ends.

The server closes with them; the bridge reads them to decide whether to
reconnect (everything but `REPLACED` and `BAD_AUTH` is worth another try).
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    GOING_AWAY = 1001
    """The server is shutting down: reconnect."""
    BINARY = 1003
    """"Unsupported data": frames are JSON text, never binary."""
    SERVER_ERROR = 1011
    """The server failed (a bug, or the database): reconnect."""
    OVERFLOW = 1013
    """"Try again later": the client did not read fast enough (its queue overflowed,
    or a send waited past its deadline). Reconnect; nothing is lost, the backlog
    is replayed from the database."""
    REPLACED = 4000
    """A newer connection of the same agent replaced this one: do not reconnect."""
    BAD_AUTH = 4001
    """A bad or revoked API key, a malformed first frame, or the key this socket
    authenticated with was rotated: do not reconnect with the same key."""
    AUTH_TIMEOUT = 4008
    """No auth frame within the time limit."""
    LIMIT = 4029
    """Too many sockets, or opened too fast: reconnect after a pause."""
