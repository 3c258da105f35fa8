"""Several server processes on one PostgreSQL: what ties them together (contract §10).

PostgreSQL itself is the engine. A change that other processes must learn of is
announced with `pg_notify` INSIDE the transaction that makes it, so the
announcement is delivered exactly when (and only if) the change commits, in
commit order; a process that crashes after its commit cannot leave the others
stale. Every process LISTENs on one channel, on one connection of its own.

What LISTEN/NOTIFY cannot promise, and what stands in for it:
- Notifications sent while a listener is disconnected are lost. So while the
  listener is down (noticed by a watchdog within `WATCHDOG_SECONDS`), every
  cache is switched off (reads go to the database) and, once it listens again,
  emptied and every local socket catches up from the database, which is the
  source of truth. Staleness is thereby bounded by the watchdog's period.
- Payloads are at most 8,000 bytes: an event names what changed (an agent, a
  pair, a seq), never a message's content.
- A transaction that notifies takes a global lock at commit: a NOTIFY in every
  send cost 30 % of throughput. Rare changes notify inside their transaction;
  sends are told in batches after their commit (`message_notices.py`), only
  while another process listens, and a sweep each second catches what a lost
  batch would have told (`cluster_events.py`).

Events are short text: a kind letter, the origin process, then fields, separated
by single spaces (ids and numbers never contain one; an event frame's JSON is the
last field and may).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "mailbox_events"
# How often each socket is checked against its agent's newest message (a lost notice).
TICK_SECONDS = 1.0
# How often the processes listening on the database are counted (for limits shared
# between them).
COUNT_SECONDS = 5.0
# The listener's health is checked this often; a check that takes longer than this
# counts as lost. Together they bound how stale a cache can be (contract: 1 s).
WATCHDOG_SECONDS = 0.4
MAX_PAYLOAD = 7_900  # PostgreSQL's limit is 8,000 bytes
LISTENER_NAME = "mailbox-cluster-listener"  # its application_name in pg_stat_activity

# Event kinds.
KEY_CHANGED = "k"  # k <origin> <agent_id>: the agent's API key was rotated
PAIR_CHANGED = "c"  # c <origin> <agent_a> <agent_b>: connected or not, changed
OPENPGP_CHANGED = "p"  # p <origin> <agent_id>: its OpenPGP key was set or removed
MESSAGE = "m"  # m <origin> <agent_id>:<seq> ...: messages committed (a batch)
FRAME = "e"  # e <origin> <agent_id> <frame json>: an event frame for the agent's socket
SUBSCRIBED = "s"  # s <origin> <agent_id> <socket>: the agent's newest socket is there
HELLO = "h"  # h <origin>: a process started listening (the others start telling it)

_COUNT_LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = $1"
)
NOTIFY_SQL = "SELECT pg_notify('" + CHANNEL + "', :payload)"
NOTIFY_RAW = "SELECT pg_notify('" + CHANNEL + "', $1)"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    origin: str
    fields: tuple[str, ...]

    @property
    def from_here(self) -> bool:
        return self.origin == ORIGIN


# This process's name in events: random, so a restarted process is a new origin.
ORIGIN = secrets.token_hex(4)


def encode(kind: str, *fields: str | int) -> str:
    payload = " ".join((kind, ORIGIN, *(str(f) for f in fields)))
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError("cluster event too large for NOTIFY")
    return payload


def decode(payload: str) -> Event | None:
    kind, _, rest = payload.partition(" ")
    origin, _, rest = rest.partition(" ")
    if not kind or not origin:
        return None
    if kind == FRAME:
        agent_id, _, frame = rest.partition(" ")
        return Event(kind, origin, (agent_id, frame))
    return Event(kind, origin, tuple(rest.split(" ")) if rest else ())


async def announce(conn: AsyncConnection, kind: str, *fields: str | int) -> None:
    """Announce a change inside the caller's transaction (PostgreSQL; nothing on
    SQLite, which serves one process): delivered to every process at commit."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(NOTIFY_SQL), {"payload": encode(kind, *fields)})


Handler = Callable[[Event], None]
Hook = Callable[[], Awaitable[None] | None]


class Cluster:
    """The LISTEN side: one connection, a watchdog, and what to do when it is lost."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.listening = False
        self.processes = 1  # server processes listening on this database, this one included
        self._on_count: list[Callable[[int], None]] = []
        self._on_tick: list[Hook] = []
        self._ticked_at = 0.0
        self._counted_at = 0.0
        self._handlers: list[Handler] = []
        self._on_lost: list[Hook] = []
        self._on_restored: list[Hook] = []
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    def on_event(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_count(self, hook: Callable[[int], None]) -> None:
        """Called with the number of server processes whenever it changes."""
        self._on_count.append(hook)

    def on_tick(self, hook: Hook) -> None:
        """Called about every `TICK_SECONDS` while listening."""
        self._on_tick.append(hook)

    def on_lost(self, hook: Hook) -> None:
        """Called when notifications may have been missed (caches must stop trusting)."""
        self._on_lost.append(hook)

    def on_restored(self, hook: Hook) -> None:
        """Called once listening again: what changed meanwhile must be read afresh."""
        self._on_restored.append(hook)

    async def start(self) -> None:
        """Listen before serving: a process must not answer from caches it cannot keep.
        Then say hello: the others learn at once that they are no longer alone."""
        await self._listen()
        assert self._connection is not None
        await self._connection.execute(NOTIFY_RAW, encode(HELLO))
        self._task = asyncio.create_task(self._watch(), name="cluster-watchdog")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()

    async def _listen(self) -> None:
        connection = await asyncpg.connect(
            self.dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
        )
        try:
            connection.add_termination_listener(self._terminated)
            await connection.add_listener(CHANNEL, self._notified)
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection
        self._lost.clear()
        self.listening = True

    async def _watch(self) -> None:
        backoff = 0.05
        while True:
            if self.listening:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WATCHDOG_SECONDS):
                        await self._lost.wait()
                if not self._lost.is_set() and await self._alive():
                    if time.monotonic() - self._ticked_at >= TICK_SECONDS:
                        self._ticked_at = time.monotonic()
                        await self._run(self._on_tick)
                    continue
                await self._mark_lost()
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cluster listener: cannot reconnect yet (%s)", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            log.info("cluster listener: listening again; caches emptied, sockets catch up")
            await self._run(self._on_restored)

    async def _alive(self) -> bool:
        """The listener answers (and, now and then, how many processes listen)."""
        connection = self._connection
        if connection is None or connection.is_closed():
            return False
        count = time.monotonic() - self._counted_at >= COUNT_SECONDS
        try:
            async with asyncio.timeout(WATCHDOG_SECONDS):
                if count:
                    processes = await connection.fetchval(_COUNT_LISTENERS, LISTENER_NAME)
                else:
                    await connection.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        if count:
            self._counted_at = time.monotonic()
            self._set_processes(int(processes))
        return True

    def _set_processes(self, processes: int) -> None:
        processes = max(1, processes)
        if processes != self.processes:
            log.info("%d server processes share this database", processes)
            self.processes = processes
            for hook in self._on_count:
                hook(processes)

    async def _mark_lost(self) -> None:
        log.warning("cluster listener lost: caches off until it listens again")
        self.listening = False
        await self._drop_connection()
        await self._run(self._on_lost)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def _run(self, hooks: list[Hook]) -> None:
        for hook in hooks:
            try:
                result = hook()
                if result is not None:
                    await result
            except Exception:
                log.exception("cluster hook failed")

    def _terminated(self, connection: asyncpg.Connection) -> None:
        if connection is self._connection:
            self._lost.set()

    def _notified(
        self, connection: asyncpg.Connection, pid: int, channel: str, payload: str
    ) -> None:
        event = decode(payload)
        if event is None:
            return
        if event.kind == HELLO and not event.from_here:
            # Counted exactly at the next count; until then, one more is the safe side.
            self._set_processes(self.processes + 1)
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("cluster event %r failed", payload[:80])
