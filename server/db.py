"""The database engine, the single-writer rule for SQLite, and migrations.

SQLite runs in WAL mode with one writer at a time (an asyncio lock, so writers
queue in the event loop instead of failing with "database is locked");
PostgreSQL relies on row locks and runs writers concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .cipher import Cipher
from .hot_pool import HotPool
from .settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HOT_POOL_SIZE = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across application crashes in WAL mode; only a power
    # loss can take the last transactions, the usual trade-off for SQLite servers.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # No checkpoint inside a commit: one takes 10-20 ms (it syncs the database file),
    # and the message writer commits on the event loop. `Database.checkpoint` runs
    # them in a thread instead; the last connection to close checkpoints too.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def libpq_url(database_url: str) -> str:
    """The URL as asyncpg itself takes it (without SQLAlchemy's driver name)."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_private_file(path: Path) -> None:
    """Create the SQLite file 0600 before SQLite does (it would make it 0644 under the
    usual umask). SQLite gives its -wal and -shm files the database file's mode, so
    they are private too. An existing file keeps the mode its owner gave it (a backup
    group may be intended), with a warning when others may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "%s has mode %o: other users may read it (its content is encrypted, its "
                "metadata is not); make it private with: chmod 600 %s*",
                path,
                mode,
                path,
            )


class Database:
    def __init__(self, settings: Settings) -> None:
        self.is_sqlite = settings.is_sqlite
        if self.is_sqlite:
            path = settings.sqlite_path
            if path is not None:
                create_private_file(path)
            self.engine: AsyncEngine = create_async_engine(settings.database_url)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                settings.database_url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=False,
            )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._sqlite_path = settings.sqlite_path
        self._hot_pool = (
            None if self.is_sqlite else HotPool(libpq_url(settings.database_url), HOT_POOL_SIZE)
        )
        self._sqlite_writer: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        # The checkpoint runs in a worker thread that outlives a cancelled await (shutdown):
        # closing its connection while that thread uses it crashes the process, so
        # both hold this lock, and a checkpoint started before `dispose` (an older
        # generation) does nothing after it.
        self._checkpoint_lock = threading.Lock()
        self._generation = 0

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def sqlite_writer(self) -> AsyncIterator[sqlite3.Connection]:
        """SQLite's message writer: a plain sqlite3 connection used on the event loop.

        A send's insert and commit take tens of microseconds in WAL mode, less than
        the thread hand-offs of an async driver, so the hottest write runs inline,
        under the same single-writer lock as every other write.
        """
        assert self._write_lock is not None and self._sqlite_path is not None
        async with self._write_lock:
            if self._sqlite_writer is None:
                writer = sqlite3.connect(
                    self._sqlite_path, isolation_level=None, check_same_thread=False
                )
                _sqlite_pragmas(writer, None)
                self._sqlite_writer = writer
            yield self._sqlite_writer

    def hot_connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A raw asyncpg connection for the hot statements (PostgreSQL only): sends and
        ack batches, single autocommit statements (see `server.hot_pool`)."""
        assert self._hot_pool is not None
        return self._hot_pool.connection()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file, in a worker thread.

        PASSIVE: it never waits for or blocks the writer, and copies what it can;
        the log is then reused from its start by a later commit.
        """
        if self.is_sqlite and self._sqlite_path is not None:
            await asyncio.to_thread(self._checkpoint_now, self._generation)

    def _checkpoint_now(self, generation: int) -> None:
        with self._checkpoint_lock:
            if generation != self._generation:
                return
            if self._checkpointer is None:
                assert self._sqlite_path is not None  # checkpoints are SQLite's alone
                self._checkpointer = sqlite3.connect(
                    self._sqlite_path, isolation_level=None, check_same_thread=False
                )
                _sqlite_pragmas(self._checkpointer, None)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _close_checkpointer(self) -> None:
        with self._checkpoint_lock:
            self._generation += 1
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None

    async def dispose(self) -> None:
        if self._hot_pool is not None:
            await self._hot_pool.close()
            # An app restarted in the same process (tests) opens connections anew.
            self._hot_pool = HotPool(self._hot_pool.dsn, HOT_POOL_SIZE)
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()
            self._sqlite_writer = None
        if self.is_sqlite:
            # Waits (off the event loop) for a checkpoint still running in its thread.
            await asyncio.to_thread(self._close_checkpointer)
        await self.engine.dispose()

    # --- migrations -------------------------------------------------------

    async def upgrade(self, cipher: Cipher | None = None) -> None:
        """Bring the schema to the newest revision (Alembic).

        Revisions that convert stored data need the cipher; without one they
        run only on a database that holds no data yet."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_upgrade, cipher)

    async def is_up_to_date(self) -> bool:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_at_head)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _run_upgrade(connection: Connection, cipher: Cipher | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["cipher"] = cipher
    command.upgrade(config, "head")


def _at_head(connection: Connection) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads
