"""A small pool of raw asyncpg connections for the hot statements (PostgreSQL only).

asyncpg's own pool costs about 0.1 ms of CPU per acquire and release, measured
here: as much as the send statement itself. Its release runs in a task of its
own (`asyncio.shield`) and a reset query we do not need. The statements run
here are single autocommit statements that leave no session state behind, so
a connection can go straight back to the next caller; one that saw anything
but a clean answer or a PostgreSQL error (a cancellation, a lost socket) is
closed instead, since its protocol state is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType

import asyncpg


class HotPool:
    """At most `size` connections, reused last-in first-out, waiters served in order."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        # A waiter gets a connection, or None: a slot freed by a closed connection,
        # in which it opens its own.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened (slots taken)
        self._closed = False

    def connection(self) -> _Lease:
        """`async with pool.connection() as conn:` (a class, not a generator: cheaper)."""
        return _Lease(self)

    async def acquire(self) -> asyncpg.Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._open < self._size:
            self._open += 1
            return await self._connect()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            # Handed something just as we were cancelled: pass it on, never leak it.
            if waiter.done() and not waiter.cancelled():
                self._hand_on(waiter.result())
            raise
        return handed if handed is not None else await self._connect()

    async def _connect(self) -> asyncpg.Connection:
        """Open a connection in a slot already taken; the slot is freed if this fails."""
        try:
            return await asyncpg.connect(self.dsn)
        except BaseException:
            self._hand_on(None)
            raise

    def release(self, connection: asyncpg.Connection, *, healthy: bool = True) -> None:
        if not healthy or self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
            self._hand_on(None)
            return
        self._hand_on(connection)

    def _hand_on(self, connection: asyncpg.Connection | None) -> None:
        """Give a connection (or a free slot) to the first waiter, else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
        self._open -= len(idle)


class _Lease:
    __slots__ = ("_connection", "_pool")

    def __init__(self, pool: HotPool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._pool.acquire()
        return self._connection

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        # A PostgreSQL error leaves an autocommit connection clean; anything else may not.
        healthy = error is None or isinstance(error, asyncpg.PostgresError)
        self._pool.release(self._connection, healthy=healthy)
