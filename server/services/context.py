"""What every service needs, built once per app: database, cipher, caches, hub, limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .. import cluster as cluster_channel
from ..cache import LRU
from ..cipher import Cipher
from ..db import Database
from ..keyed_hash import KeyedHash
from ..ratelimit import ReservingWindow, TokenBucket
from ..settings import Settings
from . import ack_store, shared_limits
from .ack_buffer import AckBuffer
from .delivery import Hub
from .message_notices import MessageNotices
from .socket_slots import SocketSlots


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent as the hot path knows it: names never change, so this is safe to cache."""

    id: str
    name: str


@dataclass
class Services:
    settings: Settings
    db: Database
    cipher: Cipher
    hub: Hub
    # Caches (single server process; every write that changes them updates them).
    agents_by_key_hash: LRU[str, AgentRef] = field(default_factory=lambda: LRU(50_000))
    agents_by_name: LRU[str, AgentRef] = field(default_factory=lambda: LRU(50_000))
    agents_by_id: LRU[str, AgentRef] = field(default_factory=lambda: LRU(50_000))
    connected_pairs: LRU[tuple[str, str], bool] = field(default_factory=lambda: LRU(100_000))
    session_info: LRU[str, tuple[str, str, str]] = field(default_factory=lambda: LRU(100_000))
    has_openpgp_key: LRU[str, bool] = field(default_factory=lambda: LRU(50_000))
    request_rate: TokenBucket = field(init=False)
    # Registrations per client address, and wrong approve codes per agent id.
    # Counted across server processes on PostgreSQL (shared_limits.py).
    registrations: shared_limits.Window = field(init=False)
    approve_failures: shared_limits.Window = field(init=False)
    # Messages per (sender id, recipient id) in the last hour; None when switched off.
    pair_messages: ReservingWindow[tuple[str, str]] | None = field(init=False)
    # WebSocket acks not yet written (see ack_buffer.py).
    acks: AckBuffer = field(init=False)
    # The other server processes on the same PostgreSQL (None on SQLite: one process).
    cluster: cluster_channel.Cluster | None = None
    # Which messages were committed here, told to the other processes in batches.
    notices: MessageNotices = field(init=False)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    # Keyed hashes under the server secret, which lives in the database: set at
    # start, once the keys are known to read it (`app.prepare_database`).
    hashes: KeyedHash = field(init=False)
    # Open WebSockets per client address and per agent, and each agent's frame rate.
    sockets_per_client: SocketSlots = field(init=False)
    sockets_per_agent: SocketSlots = field(init=False)
    ws_frame_rate: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.request_rate = TokenBucket(s.requests_per_second, s.request_burst)
        self.registrations = shared_limits.window(
            self.db, "registration", s.registrations_per_hour, 3600
        )
        self.approve_failures = shared_limits.window(
            self.db, "approve_failure", s.approve_failures_per_hour, 3600
        )
        self.pair_messages = (
            ReservingWindow(s.pair_messages_per_hour, 3600) if s.pair_messages_per_hour else None
        )
        db = self.db

        async def write_acks(acks: list[ack_store.Ack]) -> None:
            await ack_store.advance(db, acks)

        self.acks = AckBuffer(write_acks, s.ack_flush_seconds)
        self.sockets_per_client = SocketSlots(s.ws_max_sockets_per_client)
        self.sockets_per_agent = SocketSlots(s.ws_max_sockets_per_key)
        self.ws_frame_rate = TokenBucket(s.ws_frames_per_second, s.ws_frame_burst)
        from .catch_up import CatchUp  # (it reads through the services that hold the hub)

        self.hub.catch_up = CatchUp(self)
        self.notices = MessageNotices(self.notify)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run in the background, the task kept until it ends (asyncio keeps none)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def notify(self, payload: str) -> None:
        """Tell the other processes something that needs no transaction of its own."""
        try:
            async with self.db.hot_connection() as raw:
                await raw.execute(cluster_channel.NOTIFY_RAW, payload)
        except Exception:
            logging.getLogger(__name__).warning("could not notify the other processes")

    def remember_agent(self, agent: AgentRef) -> None:
        self.agents_by_name.put(agent.name, agent)
        self.agents_by_id.put(agent.id, agent)


def pair(a: str, b: str) -> tuple[str, str]:
    """The canonical (low, high) order of two agent ids."""
    return (a, b) if a < b else (b, a)
