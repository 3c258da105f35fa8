"""What every service needs, built once per app: database, cipher, caches, hub, limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cache import LRU
from ..db import Database
from ..ratelimit import ReservingWindow, TokenBucket, WindowCounter
from ..security import Cipher
from ..settings import Settings
from . import ack_store
from .ack_buffer import AckBuffer
from .delivery import Hub
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
    registrations: WindowCounter = field(init=False)
    approve_failures: WindowCounter = field(init=False)
    # Messages per (sender id, recipient id) in the last hour; None when switched off.
    pair_messages: ReservingWindow[tuple[str, str]] | None = field(init=False)
    # WebSocket acks not yet written (see ack_buffer.py).
    acks: AckBuffer = field(init=False)
    # Open WebSockets per client address and per agent, and each agent's frame rate.
    sockets_per_client: SocketSlots = field(init=False)
    sockets_per_agent: SocketSlots = field(init=False)
    ws_frame_rate: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.request_rate = TokenBucket(s.requests_per_second, s.request_burst)
        self.registrations = WindowCounter(s.registrations_per_hour, 3600)
        self.approve_failures = WindowCounter(s.approve_failures_per_hour, 3600)
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

    def remember_agent(self, agent: AgentRef) -> None:
        self.agents_by_name.put(agent.name, agent)
        self.agents_by_id.put(agent.id, agent)


def pair(a: str, b: str) -> tuple[str, str]:
    """The canonical (low, high) order of two agent ids."""
    return (a, b) if a < b else (b, a)
