"""WebSocket acks, coalesced in memory and written together on a short timer.

The bridge acknowledges every message it hands on. Written one by one, those
acks cost more than the sends; here each agent's newest ack waits in memory and
one batch (one statement on PostgreSQL) writes all of them every `interval`
seconds, when a socket closes, when its client pings, before anything reads
the watermark (a new socket's backlog, `/inbox`, `POST /inbox/ack`), and at
shutdown.

What a crash costs: the acks of the last interval. Those messages come again on
the next connection (delivery is at least once; the bridge drops them by id);
a message is never lost, since a watermark only ever moves to what the client
acknowledged. A failed write keeps the acks pending and is retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from .ack_store import Ack

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0

Write = Callable[[list[Ack]], Awaitable[object]]


class AckBuffer:
    """The newest unwritten ack of each agent, and the one writer of them."""

    def __init__(self, write: Write, interval: float) -> None:
        self._write = write
        self.interval = interval
        # agent id -> (up_to_seq, when, as a POSIX time): a tuple and a float keep the
        # per-ack cost to a dict store; Ack objects and datetimes are made per batch.
        self._pending: dict[str, tuple[int, float]] = {}
        self._new_loop_primitives()

    def _new_loop_primitives(self) -> None:
        # One batch at a time: a flush that must cover an ack waits for the batch
        # in flight, then writes what is left, so "flushed" means committed.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def note(self, agent_id: str, up_to_seq: int, at: float | None = None) -> None:
        """Remember an ack received now (or `at`); synchronous and O(1): the reader of a
        socket never waits."""
        current = self._pending.get(agent_id)
        if current is None or up_to_seq > current[0]:
            self._pending[agent_id] = (up_to_seq, time.time() if at is None else at)
            self._wake.set()

    def has_pending(self, agent_id: str) -> bool:
        return agent_id in self._pending

    async def flush(self) -> None:
        """Write every pending ack now; on return they are committed (or this raised)."""
        async with self._lock:
            if not self._pending:
                return
            batch = dict(self._pending)
            await self._write(
                [
                    Ack(agent_id, seq, datetime.fromtimestamp(at, UTC))
                    for agent_id, (seq, at) in batch.items()
                ]
            )
            for agent_id, entry in batch.items():
                # An ack that arrived during the write stays for the next batch.
                if self._pending.get(agent_id) is entry:
                    del self._pending[agent_id]

    async def flush_agent(self, agent_id: str) -> None:
        """Make this agent's acks durable before going on (free when it has none)."""
        if agent_id in self._pending:
            await self.flush()

    def start(self) -> asyncio.Task[None]:
        """Start the timer on the running loop (again after a restart of the app)."""
        self._new_loop_primitives()
        if self._pending:
            self._wake.set()
        return asyncio.create_task(self._run())

    async def _run(self) -> None:
        """After the first ack of a quiet spell, wait `interval`, then write them all."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)
            self._wake.clear()  # what arrived meanwhile is in this batch
            try:
                await self.flush()
            except Exception:
                log.exception("writing acknowledgements failed; retrying in %.0f s", RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def close(self) -> None:
        """The final flush at shutdown; what cannot be written is replayed later."""
        try:
            await self.flush()
        except Exception:
            log.exception(
                "could not write %d agents' acknowledgements at shutdown; "
                "those messages will be delivered again",
                len(self._pending),
            )

    @property
    def pending(self) -> int:
        return len(self._pending)
