"""SQLite's log checkpoints run off the event loop, never inside a send's commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.db import Database
from server.settings import Settings
from tests.servers import sqlite_url

pytestmark = pytest.mark.anyio
MIB = 1024 * 1024


async def _write(database: Database, mebibytes: int) -> None:
    async with database.sqlite_writer() as writer:
        for _ in range(mebibytes * 16):
            writer.execute("INSERT INTO blobs (b) VALUES (randomblob(65536))")


async def test_commits_leave_the_log_to_the_background_checkpoint(tmp_path: Path) -> None:
    database = Database(Settings(_env_file=None, DATABASE_URL=sqlite_url(tmp_path)))  # type: ignore[call-arg]
    log = tmp_path / "mailbox.db-wal"
    try:
        async with database.sqlite_writer() as writer:
            writer.execute("CREATE TABLE blobs (b BLOB)")
        await _write(database, 8)
        # SQLite's default would have checkpointed (and reused the log) past ~4 MiB,
        # each time inside a commit, on the event loop: 10-20 ms of a stalled server.
        grown = log.stat().st_size
        assert grown >= 8 * MIB
        await database.checkpoint()
        await _write(database, 4)
        # Checkpointed: later commits write the log from its start again, not on its end.
        assert log.stat().st_size <= grown
    finally:
        await database.dispose()
