"""Acknowledgement watermarks in the database: moving them, in batches, and reading them.

A watermark lives in `ack_watermarks`, apart from the `agents` row that every send
locks for its counter, so acks and sends never wait on each other. Moving it never
touches message rows: each move is one small row in `ack_watermark_moves` (when
it happened), from which a message's `delivered_at` is read.

A batch of moves (the WebSocket acks of every agent since the last flush, or one
`POST /inbox/ack`) is ONE statement on PostgreSQL, in autocommit: an upsert that
only moves forward and never past the agent's newest message, plus the log rows
of the moves it made. SQLite runs the same per agent in one short transaction on
its plain writer connection, under the single-writer lock, like a send.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import Database
from ..models import ack_watermarks


@dataclass(frozen=True, slots=True)
class Ack:
    """An agent acknowledged everything up to `up_to_seq` at `at`."""

    agent_id: str
    up_to_seq: int
    at: datetime


# Per agent: the acknowledged seq, clamped to the newest message (an ack cannot reach
# into the future); the upsert moves only forward; each move is logged with its time.
_POSTGRES_ADVANCE = """
WITH wanted AS (
    SELECT w.agent_id, LEAST(w.up_to_seq, a.last_seq) AS up_to_seq, w.at
    FROM unnest($1::varchar[], $2::bigint[], $3::timestamptz[]) AS w(agent_id, up_to_seq, at)
    JOIN agents a ON a.id = w.agent_id
), moved AS (
    INSERT INTO ack_watermarks AS mark (agent_id, up_to_seq)
    SELECT agent_id, up_to_seq FROM wanted WHERE up_to_seq > 0
    ON CONFLICT (agent_id) DO UPDATE SET up_to_seq = excluded.up_to_seq
    WHERE mark.up_to_seq < excluded.up_to_seq
    RETURNING mark.agent_id, mark.up_to_seq
), logged AS (
    INSERT INTO ack_watermark_moves (agent_id, up_to_seq, acked_at)
    SELECT moved.agent_id, moved.up_to_seq, wanted.at FROM moved JOIN wanted USING (agent_id)
)
SELECT agent_id, up_to_seq FROM moved
"""

_SQLITE_ADVANCE = (
    "INSERT INTO ack_watermarks (agent_id, up_to_seq)"
    " SELECT id, min(?, last_seq) FROM agents WHERE id = ? AND min(?, last_seq) > 0"
    " ON CONFLICT (agent_id) DO UPDATE SET up_to_seq = excluded.up_to_seq"
    " WHERE up_to_seq < excluded.up_to_seq"
    " RETURNING up_to_seq"
)
_SQLITE_LOG = "INSERT INTO ack_watermark_moves (agent_id, up_to_seq, acked_at) VALUES (?, ?, ?)"
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


async def advance(db: Database, acks: list[Ack]) -> dict[str, int]:
    """Move the watermarks forward (one ack per agent); the new watermark of each that moved."""
    if not acks:
        return {}
    # One order for the row locks, so two batches can never deadlock each other.
    acks = sorted(acks, key=lambda a: a.agent_id)
    if db.is_sqlite:
        async with db.sqlite_writer() as writer:
            return _advance_sqlite(writer, acks)
    async with db.hot_connection() as raw:
        return await advance_postgres(raw, acks)


async def advance_postgres(raw: asyncpg.Connection, acks: list[Ack]) -> dict[str, int]:
    """The PostgreSQL statement on a raw connection (its own commit, or the caller's)."""
    rows = await raw.fetch(
        _POSTGRES_ADVANCE,
        [a.agent_id for a in acks],
        [a.up_to_seq for a in acks],
        [a.at for a in acks],
    )
    return {row["agent_id"]: row["up_to_seq"] for row in rows}


def _advance_sqlite(writer: sqlite3.Connection, acks: list[Ack]) -> dict[str, int]:
    moved: dict[str, int] = {}
    writer.execute("BEGIN IMMEDIATE")
    try:
        for ack in acks:
            row = writer.execute(
                _SQLITE_ADVANCE, (ack.up_to_seq, ack.agent_id, ack.up_to_seq)
            ).fetchone()
            if row is not None:
                moved[ack.agent_id] = row[0]
                at = ack.at.astimezone(UTC).strftime(_SQLITE_TIME)
                writer.execute(_SQLITE_LOG, (ack.agent_id, row[0], at))
        writer.execute("COMMIT")
    except BaseException:
        writer.execute("ROLLBACK")
        raise
    return moved


async def watermark(conn: AsyncConnection, agent_id: str) -> int:
    """Everything at or below this seq is acknowledged (0: nothing yet)."""
    value = (
        await conn.execute(
            select(ack_watermarks.c.up_to_seq).where(ack_watermarks.c.agent_id == agent_id)
        )
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


async def lock_watermark(conn: AsyncConnection, agent_id: str) -> int:
    """The watermark, its row locked until the transaction ends (made first if missing),
    so an ack by ids and a concurrent move cannot interleave (PostgreSQL; SQLite has one
    writer anyway)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
    await conn.execute(
        insert(ack_watermarks).values(agent_id=agent_id, up_to_seq=0).on_conflict_do_nothing()
    )
    value = (
        await conn.execute(
            select(ack_watermarks.c.up_to_seq)
            .where(ack_watermarks.c.agent_id == agent_id)
            .with_for_update()
        )
    ).scalar_one()
    return int(value)


async def set_watermark(conn: AsyncConnection, agent_id: str, up_to_seq: int) -> None:
    """Move a locked watermark (acks by id: every message it passes has its own acked_at,
    so the move needs no log row)."""
    await conn.execute(
        ack_watermarks.update()
        .where(ack_watermarks.c.agent_id == agent_id)
        .values(up_to_seq=up_to_seq)
    )
