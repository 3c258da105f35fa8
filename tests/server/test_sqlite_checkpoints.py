"""SQLite's log checkpoints run off the event loop, never inside a send's commit."""

from __future__ import annotations

import asyncio
import threading
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


async def test_shutdown_waits_for_a_checkpoint_in_its_thread_and_none_runs_after(
    tmp_path: Path,
) -> None:
    """A checkpoint's thread outlives its cancelled await at shutdown; closing its
    connection under it crashed the whole process (a segfault seen in CI)."""
    database = Database(Settings(_env_file=None, DATABASE_URL=sqlite_url(tmp_path)))  # type: ignore[call-arg]
    await database.checkpoint()
    checkpointing = threading.Event()
    release = threading.Event()
    original = database._checkpoint_now

    def slow_checkpoint(generation: int) -> None:
        with database._checkpoint_lock:  # as long as a real one holds its connection
            checkpointing.set()
            release.wait(10)
        original(generation)

    closing = threading.Event()
    close = database._close_checkpointer

    def observed_close() -> None:
        closing.set()
        close()

    database._checkpoint_now = slow_checkpoint  # type: ignore[method-assign]
    database._close_checkpointer = observed_close  # type: ignore[method-assign]
    in_flight = asyncio.create_task(database.checkpoint())
    await asyncio.to_thread(checkpointing.wait, 10)
    disposing = asyncio.create_task(database.dispose())
    await asyncio.to_thread(closing.wait, 10)
    # closing has begun, and waits for the checkpoint that holds the connection
    assert not disposing.done() and database._checkpointer is not None
    release.set()
    await asyncio.wait_for(disposing, 10)
    await asyncio.wait_for(in_flight, 10)
    # the checkpoint that started before dispose opened no connection after it
    assert database._checkpointer is None
