"""One listener per agent: the bridge process holding an exclusive lock listens.

An LLM host may start several bridge processes of one agent (OpenClaw starts
one per session that uses the MCP server). Only one of them may keep the
WebSocket and inject, or the server would keep replacing connections (4000)
and messages would race. The holder of an exclusive lock on a file in
MAILBOX_STATE_DIR listens; the others serve tools only and try again every
half second, so one of them takes over within a second or two when the holder
exits (the kernel releases the lock even when the holder is killed).

The lock is `filelock` (flock on Unix, LockFileEx on Windows), held from the
election to the end of the process. Windows forbids reading a locked byte, so
the holder writes its pid to a file of its own beside the lock, for `doctor`
and `mailbox_status` to name it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import anyio
from filelock import FileLock, Timeout

TAKEOVER_POLL_SECONDS = 0.5
LOCK_MODE = 0o600


class ListenerLock:
    def __init__(self, state_dir: Path, agent_id: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / f"listener-{agent_id}.lock"
        self.pid_path = state_dir / f"listener-{agent_id}.pid"
        # timeout=0: one attempt, the caller polls; not thread-local, so any thread of
        # this process may release what the event loop acquired
        self._lock = FileLock(self.path, timeout=0, mode=LOCK_MODE, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            self._lock.acquire()
        except Timeout:
            return False
        self._write_pid()
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the lock."""
        while not self.try_acquire():  # noqa: ASYNC110 - another process holds it
            await anyio.sleep(TAKEOVER_POLL_SECONDS)

    def holder_pid(self) -> int | None:
        """The pid written by the current holder, if any."""
        try:
            text = self.pid_path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self.held:
            # before the lock goes: a successor writes its own pid only once it holds it
            with contextlib.suppress(OSError):
                self.pid_path.unlink()
            self._lock.release()

    def _write_pid(self) -> None:
        # written whole then renamed, so a reader never sees a half-written pid
        partial = self.pid_path.with_name(self.pid_path.name + ".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, LOCK_MODE)
        with os.fdopen(fd, "w") as out:
            out.write(str(os.getpid()))
        os.replace(partial, self.pid_path)
