"""Writing one message: the recipient's next `seq` and the encrypted row, atomically.

PostgreSQL does it in ONE statement in autocommit (one round trip, one
commit): a CTE bumps the recipient's counter, whose row lock also orders
concurrent sends to that recipient, and inserts the message, plus the new
session and the idempotency record when there are any. SQLite cannot put
writes in a CTE; there the same rows are written in one short transaction on
a plain sqlite3 connection, under the single-writer lock.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.exc import DataError, IntegrityError

from ..db import Database


@dataclass(frozen=True, slots=True)
class NewMessage:
    message_id: str
    sender_id: str
    recipient_id: str
    session_id: str
    content_encrypted: bytes
    correlation_id_encrypted: bytes | None
    encrypted: bool
    encryption: str | None
    created_at: datetime
    # Set only when the message opens a session.
    new_session_subject: bytes | None = None
    session_low_id: str | None = None
    session_high_id: str | None = None
    # Set only when the sender gave an idempotency key.
    idempotency_key_hash: str | None = None
    body_hash: str | None = None


def _postgres_statement(new_session: bool, idempotent: bool) -> str:
    # asyncpg placeholders: $1 recipient, $2 message id, $3 sender, $4 session, $5 content,
    # $6 correlation id (encrypted), $7 encrypted, $8 encryption, $9 created at, then the
    # optional parts.
    parts = [
        "WITH counter AS ("
        " UPDATE agents SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)"
    ]
    if new_session:
        parts.append(
            ", new_session AS ("
            " INSERT INTO sessions (id, subject_encrypted, agent_low_id, agent_high_id, created_at)"
            " VALUES ($4, $10, $11, $12, $9))"
        )
    parts.append(
        ", message AS ("
        " INSERT INTO messages (id, to_agent_id, seq, from_agent_id, session_id,"
        " content_encrypted, correlation_id_encrypted, encrypted, encryption, created_at)"
        " SELECT $2, $1, counter.last_seq, $3, $4, $5, $6, $7, $8, $9 FROM counter"
        " RETURNING seq)"
    )
    if idempotent:
        key, body_hash = ("$13", "$14") if new_session else ("$10", "$11")
        parts.append(
            ", idempotency AS ("
            " INSERT INTO idempotency_keys (sender_id, key_hash, body_hash, message_id, created_at)"
            f" VALUES ($3, {key}, {body_hash}, $2, $9))"
        )
    parts.append(" SELECT seq FROM message")
    return "".join(parts)


_POSTGRES = {
    (new_session, idempotent): _postgres_statement(new_session, idempotent)
    for new_session in (False, True)
    for idempotent in (False, True)
}


async def store(db: Database, row: NewMessage) -> int:
    """Commit the message; returns its seq. IntegrityError on an idempotency-key race."""
    if db.is_sqlite:
        return await _store_sqlite(db, row)
    new_session = row.new_session_subject is not None
    idempotent = row.idempotency_key_hash is not None
    args: list[object] = [
        row.recipient_id,
        row.message_id,
        row.sender_id,
        row.session_id,
        row.content_encrypted,
        row.correlation_id_encrypted,
        row.encrypted,
        row.encryption,
        row.created_at,
    ]
    if new_session:
        args += [row.new_session_subject, row.session_low_id, row.session_high_id]
    if idempotent:
        args += [row.idempotency_key_hash, row.body_hash]
    # The hottest statement goes straight to asyncpg (its prepared-statement cache),
    # skipping SQLAlchemy's per-checkout and per-execute work.
    async with db.hot_connection() as raw:
        try:
            seq: int = await raw.fetchval(_POSTGRES[(new_session, idempotent)], *args)
            return seq
        except asyncpg.UniqueViolationError as exc:
            raise IntegrityError("idempotency key race", None, exc) from exc
        except asyncpg.DataError as exc:
            raise DataError("value refused by the database", None, exc) from exc


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


async def _store_sqlite(db: Database, row: NewMessage) -> int:
    async with db.sqlite_writer() as writer:
        return _store_sqlite_inline(writer, row)


def _store_sqlite_inline(writer: sqlite3.Connection, row: NewMessage) -> int:
    created_at = row.created_at.astimezone(UTC).strftime(_SQLITE_TIME)
    writer.execute("BEGIN IMMEDIATE")
    try:
        if row.new_session_subject is not None:
            writer.execute(
                "INSERT INTO sessions (id, subject_encrypted, agent_low_id, agent_high_id,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    row.session_id,
                    row.new_session_subject,
                    row.session_low_id,
                    row.session_high_id,
                    created_at,
                ),
            )
        (seq,) = writer.execute(
            "UPDATE agents SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
            (row.recipient_id,),
        ).fetchone()
        writer.execute(
            "INSERT INTO messages (id, to_agent_id, seq, from_agent_id, session_id,"
            " content_encrypted, correlation_id_encrypted, encrypted, encryption, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.message_id,
                row.recipient_id,
                seq,
                row.sender_id,
                row.session_id,
                row.content_encrypted,
                row.correlation_id_encrypted,
                row.encrypted,
                row.encryption,
                created_at,
            ),
        )
        if row.idempotency_key_hash is not None:
            writer.execute(
                "INSERT INTO idempotency_keys"
                " (sender_id, key_hash, body_hash, message_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    row.sender_id,
                    row.idempotency_key_hash,
                    row.body_hash,
                    row.message_id,
                    created_at,
                ),
            )
        writer.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        writer.execute("ROLLBACK")
        raise IntegrityError("idempotency key race", None, exc) from exc
    except BaseException:
        writer.execute("ROLLBACK")
        raise
    return int(seq)
