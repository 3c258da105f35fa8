"""Limits that hold across server processes: sliding windows kept in PostgreSQL.

The registration limit (per client address) and the approve-failure limit (per
agent) must count every process's requests (contract §10), or N processes would
allow N times the limit. On PostgreSQL each reservation is a row in
`limit_events`, taken in one short transaction under an advisory lock on the
(limit, key) pair, so two processes cannot both take the last slot; a release
deletes the row. On SQLite (one process) the same interface wraps the in-memory
`ReservingWindow`, with no database round trip.

These limits guard rare requests (a registration, an approve), so a few
milliseconds of database work each is cheap; the per-request rate limit is kept
in memory instead (see `RequestRate` in `context.py`).
"""

from __future__ import annotations

from typing import Protocol

from ..db import Database
from ..ratelimit import ReservingWindow

Slot = float | int


class Window(Protocol):
    async def reserve(self, key: str) -> tuple[Slot | None, float]:
        """A slot now, or (None, seconds until one frees up)."""
        ...

    async def release(self, key: str, slot: Slot) -> None: ...

    async def forget_idle(self) -> None: ...


class LocalWindow:
    """One process's window (SQLite): the in-memory reservation, made async."""

    def __init__(self, limit: int, window: float) -> None:
        self._window: ReservingWindow[str] = ReservingWindow(limit, window)

    async def reserve(self, key: str) -> tuple[Slot | None, float]:
        slot = self._window.reserve(key)
        return (slot, 0.0) if slot is not None else (None, self._window.retry_after(key))

    async def release(self, key: str, slot: Slot) -> None:
        self._window.release(key, float(slot))

    async def forget_idle(self) -> None:
        self._window.forget_idle()


_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2, 0))"
_COUNT = (
    "SELECT count(*), min(at), now() FROM limit_events"
    " WHERE kind = $1 AND key = $2 AND at > now() - make_interval(secs => $3)"
)
_TAKE = "INSERT INTO limit_events (kind, key, at) VALUES ($1, $2, now()) RETURNING id"
_GIVE_BACK = "DELETE FROM limit_events WHERE id = $1"
_PRUNE = "DELETE FROM limit_events WHERE kind = $1 AND at < now() - make_interval(secs => $2)"


class SharedWindow:
    """Every process's window (PostgreSQL): `limit` events per key per `window` s."""

    def __init__(self, db: Database, kind: str, limit: int, window: float) -> None:
        self.db = db
        self.kind = kind
        self.limit = limit
        self.window = window

    async def reserve(self, key: str) -> tuple[Slot | None, float]:
        async with self.db.hot_connection() as raw, raw.transaction():
            await raw.execute(_LOCK, self.kind, key)
            count, oldest, now = await raw.fetchrow(_COUNT, self.kind, key, self.window)
            if count >= self.limit:
                return None, max(0.0, (oldest - now).total_seconds() + self.window)
            return int(await raw.fetchval(_TAKE, self.kind, key)), 0.0

    async def release(self, key: str, slot: Slot) -> None:
        async with self.db.hot_connection() as raw:
            await raw.execute(_GIVE_BACK, int(slot))

    async def forget_idle(self) -> None:
        async with self.db.hot_connection() as raw:
            await raw.execute(_PRUNE, self.kind, self.window)


def window(db: Database, kind: str, limit: int, seconds: float) -> Window:
    return LocalWindow(limit, seconds) if db.is_sqlite else SharedWindow(db, kind, limit, seconds)
