"""Writing one message: the recipient's next `seq` and the encrypted row, atomically.

PostgreSQL does it in ONE statement in autocommit (one round trip, one
commit): a CTE bumps the recipient's counter, whose row lock also orders
concurrent sends to that recipient, and inserts the message, plus the new
session and the idempotency record when there are any. SQLite cannot put
writes in a CTE; there the same rows are written in one short transaction
under the single-writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, text, update

from ..db import Database
from ..models import agents, idempotency_keys, messages, sessions


@dataclass(frozen=True, slots=True)
class NewMessage:
    message_id: str
    sender_id: str
    recipient_id: str
    session_id: str
    content_encrypted: bytes
    correlation_id: str | None
    encrypted: bool
    encryption: str | None
    created_at: datetime
    # Set only when the message opens a session.
    new_session_subject: bytes | None = None
    session_low_id: str | None = None
    session_high_id: str | None = None
    # Set only when the sender gave an idempotency key.
    idempotency_key: str | None = None
    body_hash: str | None = None


def _postgres_statement(new_session: bool, idempotent: bool) -> str:
    parts = [
        "WITH counter AS ("
        " UPDATE agents SET last_seq = last_seq + 1 WHERE id = :recipient_id RETURNING last_seq)"
    ]
    if new_session:
        parts.append(
            ", new_session AS ("
            " INSERT INTO sessions (id, subject_encrypted, agent_low_id, agent_high_id, created_at)"
            " VALUES (:session_id, :subject, :low_id, :high_id, :created_at))"
        )
    parts.append(
        ", message AS ("
        " INSERT INTO messages (id, to_agent_id, seq, from_agent_id, session_id,"
        " content_encrypted, correlation_id, encrypted, encryption, created_at)"
        " SELECT :message_id, :recipient_id, counter.last_seq, :sender_id, :session_id,"
        " :content, :correlation_id, :encrypted, :encryption, :created_at FROM counter"
        " RETURNING seq)"
    )
    if idempotent:
        parts.append(
            ", idempotency AS ("
            " INSERT INTO idempotency_keys (sender_id, key, body_hash, message_id, created_at)"
            " VALUES (:sender_id, :idempotency_key, :body_hash, :message_id, :created_at))"
        )
    parts.append(" SELECT seq FROM message")
    return "".join(parts)


_POSTGRES = {
    (new_session, idempotent): text(_postgres_statement(new_session, idempotent))
    for new_session in (False, True)
    for idempotent in (False, True)
}


async def store(db: Database, row: NewMessage) -> int:
    """Commit the message; returns its seq. IntegrityError on an idempotency-key race."""
    if db.is_sqlite:
        return await _store_sqlite(db, row)
    statement = _POSTGRES[(row.new_session_subject is not None, row.idempotency_key is not None)]
    params = {
        "recipient_id": row.recipient_id,
        "message_id": row.message_id,
        "sender_id": row.sender_id,
        "session_id": row.session_id,
        "content": row.content_encrypted,
        "correlation_id": row.correlation_id,
        "encrypted": row.encrypted,
        "encryption": row.encryption,
        "created_at": row.created_at,
        "subject": row.new_session_subject,
        "low_id": row.session_low_id,
        "high_id": row.session_high_id,
        "idempotency_key": row.idempotency_key,
        "body_hash": row.body_hash,
    }
    async with db.autocommit() as conn:
        return (await conn.execute(statement, params)).scalar_one()


async def _store_sqlite(db: Database, row: NewMessage) -> int:
    async with db.write() as conn:
        if row.new_session_subject is not None:
            await conn.execute(
                insert(sessions).values(
                    id=row.session_id,
                    subject_encrypted=row.new_session_subject,
                    agent_low_id=row.session_low_id,
                    agent_high_id=row.session_high_id,
                    created_at=row.created_at,
                )
            )
        seq = (
            await conn.execute(
                update(agents)
                .where(agents.c.id == row.recipient_id)
                .values(last_seq=agents.c.last_seq + 1)
                .returning(agents.c.last_seq)
            )
        ).scalar_one()
        await conn.execute(
            insert(messages).values(
                id=row.message_id,
                to_agent_id=row.recipient_id,
                seq=seq,
                from_agent_id=row.sender_id,
                session_id=row.session_id,
                content_encrypted=row.content_encrypted,
                correlation_id=row.correlation_id,
                encrypted=row.encrypted,
                encryption=row.encryption,
                created_at=row.created_at,
            )
        )
        if row.idempotency_key is not None:
            await conn.execute(
                insert(idempotency_keys).values(
                    sender_id=row.sender_id,
                    key=row.idempotency_key,
                    body_hash=row.body_hash,
                    message_id=row.message_id,
                    created_at=row.created_at,
                )
            )
    return int(seq)
