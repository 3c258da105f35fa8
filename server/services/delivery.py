"""Live delivery: one WebSocket subscriber per agent, frames pushed after commit.

The committing task calls `push_*` right after its transaction commits; the
push only enqueues (it never waits on a slow client). Each subscriber's writer
drains its own queue, so one slow reader delays nobody else. A subscriber whose
queue overflows is closed: it reconnects and catches up from the database,
which is the source of truth. Message frames carry the recipient's `seq`; the
writer skips any seq it already sent, which makes the hand-over from backlog
to live frames exact.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CLOSE_REPLACED = 4000
CLOSE_OVERFLOW = 1013  # "try again later": the client reconnects and resumes


@dataclass(eq=False)
class Subscriber:
    agent_id: str
    queue_size: int
    queue: asyncio.Queue[tuple[int | None, str] | None] = field(init=False)
    last_sent_seq: int = 0
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.queue_size)

    def offer(self, seq: int | None, frame: str) -> None:
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait((seq, frame))
        except asyncio.QueueFull:
            log.warning("subscriber for %s is too slow; closing it to resume later", self.agent_id)
            self.close(CLOSE_OVERFLOW)

    def close(self, code: int) -> None:
        if self.closed.is_set():
            return
        self.close_code = code
        self.closed.set()


class Hub:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[str, Subscriber] = {}

    def subscribe(self, agent_id: str) -> Subscriber:
        """Register a new subscriber; an older one of the same agent is replaced (4000)."""
        subscriber = Subscriber(agent_id, self.queue_size)
        previous = self._subscribers.get(agent_id)
        self._subscribers[agent_id] = subscriber
        if previous is not None:
            previous.close(CLOSE_REPLACED)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if self._subscribers.get(subscriber.agent_id) is subscriber:
            del self._subscribers[subscriber.agent_id]

    def push_message(self, agent_id: str, seq: int, frame: str) -> None:
        subscriber = self._subscribers.get(agent_id)
        if subscriber is not None:
            subscriber.offer(seq, frame)

    def push_event(self, agent_id: str, frame: str) -> None:
        subscriber = self._subscribers.get(agent_id)
        if subscriber is not None:
            subscriber.offer(None, frame)

    def close_all(self) -> None:
        for subscriber in list(self._subscribers.values()):
            subscriber.close(1001)

    @property
    def connected(self) -> int:
        return len(self._subscribers)
