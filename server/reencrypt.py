"""`mailbox-server reencrypt`: every encrypted value rewritten under the first key.

After it finishes, keys other than the first can be removed from
`MAILBOX_ENCRYPTION_KEY` (it narrows the recorded fingerprints, see
`server.key_registry`). Built so the server can keep serving meanwhile:

- batches in primary-key order, each read in one short transaction and
  written in another, so no lock is held for long (PostgreSQL serves sends,
  acks and reads between them; SQLite's writer waits one batch at most);
- resumable: every batch commits on its own, and a value the first key
  already decrypts is left alone, so a run that was interrupted, or run
  again, only rewrites what is left;
- these columns are written once, when their row is inserted, and never
  updated: a plain update by primary key cannot overwrite a newer value.

The server secret (`server_secrets`) is one of the values: its token changes,
the secret does not, so every keyed hash stays valid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Column, Row, Table, bindparam, func, select, update

from . import key_registry
from .cipher import Cipher
from .db import Database
from .models import agents, connection_requests, messages, server_secrets, sessions

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class EncryptedTable:
    table: Table
    key: Column[Any]
    columns: tuple[Column[Any], ...]

    @property
    def name(self) -> str:
        return self.table.name


# Every column that holds Fernet tokens. A new one must be listed here, or its
# values would keep a retired key (tests/server/test_reencrypt.py checks the list).
ENCRYPTED = (
    EncryptedTable(server_secrets, server_secrets.c.name, (server_secrets.c.value_encrypted,)),
    EncryptedTable(agents, agents.c.id, (agents.c.description_encrypted,)),
    EncryptedTable(
        connection_requests,
        connection_requests.c.id,
        (connection_requests.c.code_encrypted, connection_requests.c.message_encrypted),
    ),
    EncryptedTable(sessions, sessions.c.id, (sessions.c.subject_encrypted,)),
    EncryptedTable(
        messages, messages.c.id, (messages.c.content_encrypted, messages.c.correlation_id_encrypted)
    ),
)


@dataclass
class Progress:
    """Where a run stands, reported after each committed batch."""

    table: str
    rows_done: int
    rows_total: int  # counted when the table's turn came; rows added since may exceed it
    rewritten: int = 0
    current: int = 0  # values already under the first key
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (table, primary key)


async def reencrypt(
    db: Database,
    cipher: Cipher,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[Progress], None] = lambda _: None,
) -> Progress:
    """Rewrite every value under the first key; returns the totals.

    Refuses (ConfigurationError) when the database needs a key that is not
    configured: those values could not be read, so no key may be retired.
    Values no key reads are counted as unreadable and left as they are; the
    recorded keys are narrowed only when there are none."""
    async with db.write() as conn:
        await key_registry.check_and_record(conn, cipher)
    totals = Progress(table="", rows_done=0, rows_total=0)
    for spec in ENCRYPTED:
        await _reencrypt_table(db, cipher, spec, batch_size, progress, totals)
    if not totals.unreadable:
        await key_registry.narrow_to_primary(db, cipher)
    return totals


async def _reencrypt_table(
    db: Database,
    cipher: Cipher,
    spec: EncryptedTable,
    batch_size: int,
    progress: Callable[[Progress], None],
    totals: Progress,
) -> None:
    async with db.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(spec.table))).scalar_one()
    state = Progress(table=spec.name, rows_done=0, rows_total=total)
    last_key = None
    while True:
        query = select(spec.key, *spec.columns).order_by(spec.key).limit(batch_size)
        if last_key is not None:
            query = query.where(spec.key > last_key)
        async with db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            break
        changes = _rotate_batch(cipher, spec, rows, state)
        for column, values in changes.items():
            if values:
                async with db.write() as conn:
                    await conn.execute(
                        update(spec.table)
                        .where(spec.key == bindparam("row_key"))
                        .values({column.name: bindparam("new_token")}),
                        values,
                    )
        last_key = rows[-1][0]
        state.rows_done += len(rows)
        progress(state)
    totals.rows_done += state.rows_done
    totals.rows_total += state.rows_total
    totals.rewritten += state.rewritten
    totals.current += state.current
    totals.unreadable += state.unreadable


def _rotate_batch(
    cipher: Cipher, spec: EncryptedTable, rows: Sequence[Row[Any]], state: Progress
) -> dict[Column[Any], list[dict[str, Any]]]:
    changes: dict[Column[Any], list[dict[str, Any]]] = {c: [] for c in spec.columns}
    for row in rows:
        for index, column in enumerate(spec.columns, start=1):
            token = row[index]
            if token is None:
                continue
            if cipher.is_under_primary(token):
                state.current += 1
                continue
            try:
                new_token = cipher.rotate(token)
            except InvalidToken:
                state.unreadable.append((spec.name, str(row[0])))
                continue
            changes[column].append({"row_key": row[0], "new_token": new_token})
            state.rewritten += 1
    return changes
