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

    def wait_started(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._started_fd], [], [], timeout)
        return bool(ready) and os.read(self._started_fd, 1) == b"x"

    def let_go(self) -> None:
        """Release the worker; OSError (ENXIO) at once if it is not waiting."""
        os.close(os.open(self.release, os.O_WRONLY | os.O_NONBLOCK))

    def close(self) -> None:
        os.close(self._started_fd)
