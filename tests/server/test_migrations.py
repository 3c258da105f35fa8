"""Migrations carry existing data over, on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection

from server.cipher import Cipher
from server.clock import as_utc
from server.db import Database, alembic_config
from server.settings import Settings
from tests.servers import postgres_database, sqlite_url

# The tables as revision 0001 left them (only the columns these tests write).
_agents = sa.table(
    "agents",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("api_key_hash", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("last_seq", sa.BigInteger),
    sa.column("ack_seq", sa.BigInteger),
)
_sessions = sa.table(
    "sessions",
    sa.column("id", sa.String),
    sa.column("subject_encrypted", sa.LargeBinary),
    sa.column("agent_low_id", sa.String),
    sa.column("agent_high_id", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_messages = sa.table(
    "messages",
    sa.column("id", sa.String),
    sa.column("to_agent_id", sa.String),
    sa.column("seq", sa.BigInteger),
    sa.column("from_agent_id", sa.String),
    sa.column("session_id", sa.String),
    sa.column("content_encrypted", sa.LargeBinary),
    sa.column("encrypted", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("acked_at", sa.DateTime(timezone=True)),
)
_moves = sa.table(
    "ack_watermark_moves",
    sa.column("agent_id", sa.String),
    sa.column("up_to_seq", sa.BigInteger),
    sa.column("acked_at", sa.DateTime(timezone=True)),
)
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@contextlib.contextmanager
def _empty_database(database_url: str, directory: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield sqlite_url(directory)
        return
    with postgres_database() as url:
        yield url


def _run(url: str, work: Any) -> Any:
    """Run `work(sync_connection)` in one transaction, as `mailbox-server migrate` does."""

    async def run() -> Any:
        database = Database(Settings(_env_file=None, DATABASE_URL=url))  # type: ignore[call-arg]
        try:
            async with database.engine.begin() as conn:
                return await conn.run_sync(work)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _migrate(revision: str, *, down: bool = False, cipher: Cipher | None = None) -> Any:
    """Migrate as `mailbox-server migrate` does: with the keys (0003 converts data)."""

    def work(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        config.attributes["cipher"] = cipher or Cipher([Fernet.generate_key().decode()])
        (command.downgrade if down else command.upgrade)(config, revision)

    return work


def _seed(connection: Connection) -> None:
    """Bob got three messages and acknowledged two (each with its acked_at, as 0001 did)."""
    for agent_id, name, last_seq, ack_seq in (("a", "alice", 0, 0), ("b", "bob", 3, 2)):
        connection.execute(
            _agents.insert().values(
                id=agent_id,
                name=name,
                api_key_hash=name * 8,
                created_at=T0,
                last_seq=last_seq,
                ack_seq=ack_seq,
            )
        )
    connection.execute(
        _sessions.insert().values(
            id="s", subject_encrypted=b"x", agent_low_id="a", agent_high_id="b", created_at=T0
        )
    )
    for seq in (1, 2, 3):
        connection.execute(
            _messages.insert().values(
                id=f"m{seq}",
                to_agent_id="b",
                seq=seq,
                from_agent_id="a",
                session_id="s",
                content_encrypted=b"x",
                encrypted=False,
                created_at=T0,
                acked_at=T0 + timedelta(minutes=seq) if seq <= 2 else None,
            )
        )


def _read(connection: Connection) -> dict[str, Any]:
    columns = {c["name"] for c in sa.inspect(connection).get_columns("agents")}
    tables = set(sa.inspect(connection).get_table_names())
    acked = dict(connection.execute(sa.select(_messages.c.seq, _messages.c.acked_at)).all())
    found: dict[str, Any] = {
        "ack_seq_column": "ack_seq" in columns,
        "agents": connection.execute(sa.select(sa.func.count()).select_from(_agents)).scalar(),
        "acked_at": {seq: as_utc(at) if at else None for seq, at in acked.items()},
    }
    if "ack_watermarks" in tables:
        found["watermarks"] = dict(
            connection.execute(sa.text("SELECT agent_id, up_to_seq FROM ack_watermarks")).all()
        )
    if "ack_seq" in columns:
        found["ack_seq"] = dict(
            connection.execute(sa.select(_agents.c.id, _agents.c.ack_seq)).all()
        )
    return found


def test_upgrading_makes_ack_seq_the_watermark_and_keeps_every_row(
    database_url: str, tmp_path: Path
) -> None:
    with _empty_database(database_url, tmp_path) as url:
        _run(url, _migrate("0001"))
        _run(url, _seed)
        _run(url, _migrate("0002"))
        found = _run(url, _read)
    assert found["watermarks"] == {"b": 2}
    assert not found["ack_seq_column"]
    # Dropping the column must not recreate `agents`: SQLite's cascade would empty the rest.
    assert found["agents"] == 2
    assert found["acked_at"] == {
        1: T0 + timedelta(minutes=1),
        2: T0 + timedelta(minutes=2),
        3: None,
    }


def test_downgrading_puts_the_watermark_and_its_delivery_times_back(
    database_url: str, tmp_path: Path
) -> None:
    moved_at = T0 + timedelta(hours=1)
    with _empty_database(database_url, tmp_path) as url:
        _run(url, _migrate("0001"))
        _run(url, _seed)
        _run(url, _migrate("0002"))
        _run(
            url,
            lambda c: (
                c.execute(sa.text("UPDATE ack_watermarks SET up_to_seq = 3 WHERE agent_id = 'b'")),
                c.execute(_moves.insert().values(agent_id="b", up_to_seq=3, acked_at=moved_at)),
            ),
        )
        _run(url, _migrate("0001", down=True))
        found = _run(url, _read)
    assert found["ack_seq"] == {"a": 0, "b": 3}
    assert found["acked_at"][3] == moved_at
    assert found["acked_at"][1] == T0 + timedelta(minutes=1)  # kept, not overwritten
