"""Two named pipes for holding a worker mid-parse, each side with a deadline, never a hang."""

from __future__ import annotations

import os
import select
from pathlib import Path


class HeldParse:
    """`started` is written by the worker when a key arrives; `release` lets it go on."""

    def __init__(self, directory: Path) -> None:
        self.started, self.release = directory / "started", directory / "release"
        os.mkfifo(self.started)
        os.mkfifo(self.release)
        # Open for reading now, without blocking, so the worker's open never waits.
        self._started_fd = os.open(self.started, os.O_RDONLY | os.O_NONBLOCK)
        # Held open as the release's writer (O_RDWR never blocks on Linux): the worker's
        # open succeeds at once and its read waits until this is closed, whenever the
        # worker gets there. (Opening for writing in `let_go` raced the worker's open.)
        self._release_fd: int | None = os.open(self.release, os.O_RDWR)

    def wait_started(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._started_fd], [], [], timeout)
        return bool(ready) and os.read(self._started_fd, 1) == b"x"

    def let_go(self) -> None:
        """Release the worker (now, or as soon as it reads)."""
        if self._release_fd is not None:
            os.close(self._release_fd)
            self._release_fd = None

    def close(self) -> None:
        os.close(self._started_fd)
        self.let_go()
