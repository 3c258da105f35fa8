"""SQLite serves one server process: a lock beside the database file says which.

The server keeps its caches, its rate limits and the WebSocket hub in memory and
relies on SQLite's single writer for the order of a recipient's messages; a second
process on the same file would share neither (a send on one would never reach a
socket on the other). So the first process holds an exclusive lock on
`<database>.lock` for as long as it runs, and any other refuses to start, naming
the way to run several: PostgreSQL.

The lock is `filelock` (flock on Unix): the kernel drops it when the process
ends, however it ends, so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from .errors import ConfigurationError

LOCK_MODE = 0o600


class SingleProcessLock:
    """Held from start-up to shutdown; `acquire` refuses when another process holds it."""

    def __init__(self, database_file: Path) -> None:
        self.database_file = database_file
        self.path = database_file.with_name(database_file.name + ".lock")
        self._lock = FileLock(self.path, timeout=0, mode=LOCK_MODE)

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigurationError(
                f"another server process is using {self.database_file} (it holds "
                f"{self.path}). SQLite serves one process: stop the other one, or run "
                "several on PostgreSQL (DATABASE_URL=postgresql+asyncpg://…)."
            ) from None

    def release(self) -> None:
        self._lock.release()
