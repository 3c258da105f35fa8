"""One listener per agent: the bridge process holding an exclusive lock listens.

An LLM host may start several bridge processes of one agent (OpenClaw starts
one per session that uses the MCP server). Only one of them may keep the
WebSocket and inject, or the server would keep replacing connections (4000)
and messages would race. The holder of an exclusive `flock` on a file in
MAILBOX_STATE_DIR listens; the others serve tools only and try again every
second, so one of them takes over within a second or two when the holder
exits (the kernel releases the lock even when the holder is killed).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import anyio

TAKEOVER_POLL_SECONDS = 0.5


class ListenerLock:
    def __init__(self, state_dir: Path, agent_id: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / f"listener-{agent_id}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    async def acquire(self) -> None:
        """Wait until this process holds the lock."""
        while not self.try_acquire():  # noqa: ASYNC110 - another process holds it
            await anyio.sleep(TAKEOVER_POLL_SECONDS)

    def holder_pid(self) -> int | None:
        """The pid written by the current holder, if any."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
