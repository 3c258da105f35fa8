"""Live delivery: one WebSocket subscriber per agent, frames pushed after commit.

The committing task calls `push_*` right after its transaction commits; the
push only enqueues (it never waits on a slow client). Each subscriber's writer
drains its own queue, so one slow reader delays nobody else. A subscriber whose
queue overflows (in frames or in bytes) is closed: it reconnects and catches up
from the database, which is the source of truth. Message frames carry the
recipient's `seq`; a push is queued directly only when it is the very next seq
(else the socket catches up from the database, `catch_up.py`), and the writer
skips any seq it already sent, which makes the hand-over from backlog to live
frames exact.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailbox_wire import CloseCode

if TYPE_CHECKING:
    from .catch_up import CatchUp

log = logging.getLogger(__name__)


class Subscriber:
    """One connected agent's outgoing frames: a bounded FIFO and at most one waiter.

    Deliberately smaller than an asyncio.Queue (thousands of idle sockets each
    hold one): a deque, and a future only while the writer waits.
    """

    __slots__ = (
        "_pending",
        "_pending_bytes",
        "_waiter",
        "agent_id",
        "announced",
        "backlog_sent",
        "byte_limit",
        "catching_up",
        "close_code",
        "closed",
        "key_hash",
        "last_queued_seq",
        "last_sent_seq",
        "limit",
        "on_close",
        "socket_id",
    )

    def __init__(self, agent_id: str, key_hash: str, limit: int, byte_limit: int) -> None:
        self.agent_id = agent_id
        self.key_hash = key_hash
        self.limit = limit
        self.byte_limit = byte_limit
        self.last_sent_seq = 0
        self.last_queued_seq = 0
        self.close_code: int | None = None
        self.closed = False
        # Called once when the hub closes this subscriber, to stop its writer at once
        # (it may be stuck sending to a client that does not read).
        self.on_close: Callable[[int], object] | None = None
        # Across processes (cluster_events.py): this socket's name in announcements,
        # and whether its own is committed (so a later one is newer).
        self.socket_id = secrets.token_hex(6)
        self.announced = False
        self.backlog_sent = asyncio.Event()
        self.catching_up = False
        self._pending: deque[tuple[int | None, str]] = deque()
        self._pending_bytes = 0
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, seq: int | None, frame: str) -> None:
        if self.closed:
            return
        # Bounded in bytes too: a thousand large messages are tens of megabytes. The
        # size is what the frame takes in memory (1 to 4 bytes a character), read in O(1).
        size = sys.getsizeof(frame)
        if len(self._pending) >= self.limit or self._pending_bytes + size > self.byte_limit:
            log.warning("subscriber for %s is too slow; closing it to resume later", self.agent_id)
            self.close(CloseCode.OVERFLOW)
            return
        self._pending.append((seq, frame))
        self._pending_bytes += size
        if seq is not None and seq > self.last_queued_seq:
            self.last_queued_seq = seq
        self._wake()

    @property
    def newest_seq(self) -> int:
        """The newest message this socket has sent or has queued."""
        return max(self.last_sent_seq, self.last_queued_seq)

    def takes_directly(self, seq: int) -> bool:
        """Is a pushed message the very next one, with nothing it could overtake?"""
        return self.backlog_sent.is_set() and not self.catching_up and seq == self.newest_seq + 1

    async def next(self) -> tuple[int | None, str] | None:
        """The next frame to send, or None once closed."""
        while not self._pending and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        item = self._pending.popleft()
        self._pending_bytes -= sys.getsizeof(item[1])
        return item

    def close(self, code: int) -> None:
        """Stop this subscriber: its writer sends nothing more (not even queued frames,
        which would leave a gap the client might acknowledge past)."""
        if self.closed:
            return
        self.close_code = code
        self.closed = True
        self._pending.clear()
        self._pending_bytes = 0
        self.backlog_sent.set()  # nobody waits for a backlog that will never come
        self._wake()
        if self.on_close is not None:
            self.on_close(code)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Hub:
    def __init__(self, queue_size: int, queue_bytes: int) -> None:
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._subscribers: dict[str, Subscriber] = {}
        self.catch_up: CatchUp  # set by Services, which it reads through

    def subscribe(self, agent_id: str, key_hash: str) -> Subscriber:
        """Register a new subscriber; an older one of the same agent is replaced (4000)."""
        subscriber = Subscriber(agent_id, key_hash, self.queue_size, self.queue_bytes)
        previous = self._subscribers.get(agent_id)
        self._subscribers[agent_id] = subscriber
        if previous is not None:
            previous.close(CloseCode.REPLACED)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if self._subscribers.get(subscriber.agent_id) is subscriber:
            del self._subscribers[subscriber.agent_id]

    def subscriber(self, agent_id: str) -> Subscriber | None:
        return self._subscribers.get(agent_id)

    def subscribers(self) -> list[Subscriber]:
        return list(self._subscribers.values())

    def push_message(self, agent_id: str, seq: int, frame: str) -> None:
        """A message this process just committed."""
        subscriber = self._subscribers.get(agent_id)
        if subscriber is None:
            return
        if subscriber.takes_directly(seq):
            subscriber.offer(seq, frame)
        else:
            self.catch_up.request(subscriber, seq)

    def committed_elsewhere(self, agent_id: str, seq: int) -> None:
        """A message another process committed (or, after a lost listener, maybe did)."""
        subscriber = self._subscribers.get(agent_id)
        if subscriber is not None and seq > subscriber.newest_seq:
            self.catch_up.request(subscriber, seq)

    def push_event(self, agent_id: str, frame: str) -> None:
        subscriber = self._subscribers.get(agent_id)
        if subscriber is not None:
            subscriber.offer(None, frame)

    def close_key(self, agent_id: str, key_hash: str) -> None:
        """Close the socket authenticated with this (just rotated) key, if any (4001)."""
        subscriber = self._subscribers.get(agent_id)
        if subscriber is not None and subscriber.key_hash == key_hash:
            subscriber.close(CloseCode.BAD_AUTH)  # its key was rotated

    def close_all(self) -> None:
        for subscriber in list(self._subscribers.values()):
            subscriber.close(CloseCode.GOING_AWAY)

    @property
    def connected(self) -> int:
        return len(self._subscribers)
