"""How many WebSockets are open at once, per client address and per agent.

Each open socket costs memory whatever its client does, so both are capped
(issue 13: eight sockets that never read held 195 MB). A client address takes
a slot from the moment its socket is accepted, before it authenticates; an
agent from its `auth_ok` until its handler ends. A newer socket of an agent
still replaces the older one (close 4000), which gives its slot back as soon
as it has written its close frame, so the per-agent cap only bites when
sockets are opened faster than the replaced ones can close.
"""

from __future__ import annotations

from collections import Counter


class SocketSlots:
    """Counts of open sockets by key (an address or an agent id), each up to `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def take(self, key: str) -> bool:
        """Take a slot for a socket opening now; False when `key` has all of them."""
        if self._open[key] >= self.limit:
            return False
        self._open[key] += 1
        return True

    def give_back(self, key: str) -> None:
        remaining = self._open[key] - 1
        if remaining > 0:
            self._open[key] = remaining
        else:
            # Keys of closed sockets are forgotten, so the map holds only open ones.
            del self._open[key]

    def open(self, key: str) -> int:
        return self._open.get(key, 0)

    def __len__(self) -> int:
        """How many keys have a socket open."""
        return len(self._open)
