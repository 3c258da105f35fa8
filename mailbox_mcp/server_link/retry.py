"""The bridge's one retry helper: exponential backoff with jitter, and the error's own say.

Every loop of the bridge that tries again (the listener's reconnects, the
injector's deliveries, the run watcher, the first call to the server) waits
what a ``Backoff`` tells it: 1 s, 2 s, 4 s … up to a maximum, each wait drawn
between half of that and all of it, so that many bridges do not come back at
once after a restart, nor ever hammer a server that just came up. Reset once
things are healthy again.

After an error, ``delay_after`` reads the decision the error carries
(``mailbox_mcp/errors.py``): a ``retry_after`` the other side asked for is
honoured, and a non-retryable error (a refused token, a tool OpenClaw does not
allow) is tried again only at the slowest pace: waiting will not cure it, but
the owner's fix (OpenClaw reloads its config by itself) must still be picked up
without a restart, and nothing may be lost meanwhile.

Our own rather than ``stamina``: these loops never give up, report each failure
on the way (``mailbox_status``), reset after a healthy spell and slow down for a
non-retryable error instead of stopping, which are hooks around stamina's
attempt/timeout model more than uses of it, for one more dependency (tenacity).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mailbox_mcp.errors import BridgeError

__all__ = ["RETRY_AFTER_CAP", "Backoff"]

# A Retry-After beyond this is taken as this: a confused peer must not park delivery
# for hours; it will say so again if it still means it.
RETRY_AFTER_CAP = 600.0


@dataclass
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        # Jitter spreads reconnects of many bridges after a server restart.
        return random.uniform(ceiling / 2, ceiling)

    def delay_after(self, error: BaseException) -> float:
        """The wait before trying again after ``error``, as the error asks."""
        if isinstance(error, BridgeError) and not error.retryable:
            self.attempt += 1
            return self.maximum
        delay = self.next_delay()
        retry_after = error.retry_after if isinstance(error, BridgeError) else None
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, RETRY_AFTER_CAP)
        return delay

    def reset(self) -> None:
        self.attempt = 0
