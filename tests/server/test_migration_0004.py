"""Migration 0004 (connection blocks) adds its table and index and takes them away again,
on SQLite and PostgreSQL, leaving every other row as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tests.server.test_migrations import _migrate, _run
from tests.servers import postgres_database, sqlite_url

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_agents = sa.table(
    "agents",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("api_key_hash", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("last_seq", sa.BigInteger),
)
_blocks = sa.table(
    "connection_blocks",
    sa.column("blocker_id", sa.String),
    sa.column("blocked_id", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


@contextlib.contextmanager
def _empty_database(database_url: str, directory: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield sqlite_url(directory)
        return
    with postgres_database() as url:
        yield url


def _seed_agents(connection: Connection) -> None:
    for agent_id in ("a", "b"):
        connection.execute(
            _agents.insert().values(
                id=agent_id,
                name=f"agent-{agent_id}",
                api_key_hash=agent_id * 64,
                created_at=T0,
                last_seq=0,
            )
        )


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    return {
        "tables": set(inspector.get_table_names()),
        "indexes": {i["name"] for i in inspector.get_indexes("connection_requests")},
        "agents": connection.execute(sa.select(sa.func.count()).select_from(_agents)).scalar(),
    }


def test_0004_adds_the_blocks_table_and_removes_it_on_the_way_down(
    database_url: str, tmp_path: Path
) -> None:
    with _empty_database(database_url, tmp_path) as url:
        _run(url, _migrate("0003"))
        _run(url, _seed_agents)
        _run(url, _migrate("0004"))
        up = _run(url, _schema)
        _run(
            url,
            lambda c: c.execute(
                _blocks.insert().values(blocker_id="a", blocked_id="b", created_at=T0)
            ),
        )
        # One block per pair.
        with pytest.raises(IntegrityError):
            _run(
                url,
                lambda c: c.execute(
                    _blocks.insert().values(blocker_id="a", blocked_id="b", created_at=T0)
                ),
            )
        _run(url, _migrate("0003", down=True))
        down = _run(url, _schema)
    assert "connection_blocks" in up["tables"]
    assert "ix_connection_requests_pair_status" in up["indexes"]
    assert "connection_blocks" not in down["tables"]
    assert "ix_connection_requests_pair_status" not in down["indexes"]
    assert up["agents"] == down["agents"] == 2
