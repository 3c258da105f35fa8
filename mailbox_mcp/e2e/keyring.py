"""Peers' published OpenPGP keys: from the directory, kept in memory and in MAILBOX_STATE_DIR.

A lookup goes memory, then disk, then `GET /public/agents/{name}`. An entry
older than `max_age` is fetched again when next used, so a rotated key reaches
its senders within that time; `lookup(name, refresh=True)` fetches at once,
which the receiving side does when a signature does not check against the
cached key (the peer may just have rotated). The disk copy lets the several
bridge processes of one agent, and restarts, share what was fetched. A peer
without a key is never cached: the moment it publishes one, it is used.

Every key is checked to name its agent (`crypto.PublicKey.parse`) each time it
is read, from the server or from disk. That parse runs in a worker thread,
under the limiter the bridge's other pgpy work shares: even bounded
(`openpgp_packets.py`) a peer's key may cost pgpy ~20 ms of CPU, and the
listener and the tools must keep running meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

import mailbox_wire as wire
from mailbox_mcp.e2e.openpgp import PeerKeyMissing, PublicKey
from mailbox_mcp.inbound.envelope import AGENT_NAME_PATTERN

__all__ = ["DEFAULT_MAX_AGE_SECONDS", "PeerKeys"]

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 600.0

Fetch = Callable[[str], Awaitable[wire.DirectoryEntry]]
T = TypeVar("T")


class PeerKeys:
    def __init__(
        self,
        fetch: Fetch,
        cache_dir: Path,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        """`fetch(name)` answers the directory entry (`MailboxAPI.public_agent`); keys are
        parsed in worker threads under `limiter` (one at a time by default)."""
        self._fetch = fetch
        self._dir = cache_dir
        self._max_age = max_age
        self._memory: dict[str, tuple[PublicKey, float]] = {}
        self._limiter = limiter or anyio.CapacityLimiter(1)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)

    async def lookup(self, name: str, *, refresh: bool = False) -> tuple[PublicKey | None, bool]:
        """(the key or None if the peer published none, whether it was fetched just now).

        Raises MailboxAPIError when the directory must be asked and cannot
        answer, and BadKeyError or WrongKeyOwner for a published key that
        cannot be used.
        """
        if not AGENT_NAME_PATTERN.fullmatch(name):  # it becomes a file name below
            raise ValueError(f"not an agent name: {name!r}")
        if not refresh:
            cached = self._memory.get(name) or await self._in_thread(self._read, name)
            if cached is not None and time.time() - cached[1] < self._max_age:
                self._memory[name] = cached
                return cached[0], False
        entry = await self._fetch(name)
        armored = entry.openpgp_public_key
        if not armored:
            self._forget(name)
            return None, True
        key = await self._in_thread(PublicKey.parse, armored, name)
        self._memory[name] = (key, time.time())
        self._write(name, armored)
        return key, True

    async def require(self, name: str) -> PublicKey:
        """The peer's key; PeerKeyMissing if it has none."""
        key, _ = await self.lookup(name)
        if key is None:
            raise PeerKeyMissing(name)
        return key

    # --- disk --------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._dir / f"{name}.json"

    def _read(self, name: str) -> tuple[PublicKey, float] | None:
        try:
            data = json.loads(self._path(name).read_text())
            return PublicKey.parse(data["openpgp_public_key"], name), float(data["fetched_at"])
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged cache file is only a cache miss
            log.warning("ignoring the cached OpenPGP key of %s: %s", name, exc)
            return None

    def _write(self, name: str, armored: str) -> None:
        path = self._path(name)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary.write_text(
                json.dumps({"openpgp_public_key": armored, "fetched_at": time.time()})
            )
            os.replace(temporary, path)  # other bridge processes never read half a file
        except OSError as exc:
            log.warning("cannot cache the OpenPGP key of %s in %s: %s", name, self._dir, exc)

    def _forget(self, name: str) -> None:
        self._memory.pop(name, None)
        try:
            self._path(name).unlink()
        except OSError:
            pass
