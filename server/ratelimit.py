"""In-process rate limits: token buckets for request rates, and reserving windows for
counted events (registrations, wrong approve codes, messages per pair).

A counted event is never checked before an await and recorded after it: requests
in flight together would all pass the check (issue 13). `ReservingWindow.reserve`
checks and takes a slot in one synchronous call, and `release` gives it back when
the event did not happen. That reserve/release shape is what a shared store
(a PostgreSQL table) would offer to count across several server processes.

One server process is the design point (see the README); the state lives in
memory and is bounded by dropping idle entries.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

_MAX_TRACKED = 100_000

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.limit_rate = rate
        self.limit_burst = burst
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def share(self, processes: int) -> None:
        """This process's part when `processes` serve the same keys (contract §10): each
        allows 1/N of the limit, so together they never allow more than the limit."""
        processes = max(1, processes)
        self.rate = self.limit_rate / processes
        self.burst = max(1.0, self.limit_burst / processes)

    def take(self, key: str) -> float:
        """Take one token; returns 0 when allowed, else seconds until one is free."""
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_TRACKED:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated > full_after]:
            del self._buckets[key]


class ReservingWindow(Generic[K]):
    """At most `limit` events per key in any sliding `window` seconds, taken as reservations.

    `reserve` checks and records in one synchronous call, so no await can slip in
    between and two concurrent callers cannot both take the last slot; `release`
    gives a slot back when what it was reserved for did not happen. Memory is
    bounded: at most `limit` stamps per key (a full key refuses) and `max_keys`
    keys (idle ones are dropped first).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        max_keys: int = _MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock  # a parameter so tests can move time without waiting
        self._events: dict[K, deque[float]] = {}

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._events)

    def reserve(self, key: K) -> float | None:
        """Take a slot now: its stamp (for `release`), or None when the window is full."""
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._make_room()
            events = self._events[key] = deque()
        else:
            cutoff = now - self.window
            while events and events[0] <= cutoff:
                events.popleft()
        if len(events) >= self.limit:
            return None
        events.append(now)
        return now

    def retry_after(self, key: K) -> float:
        """Seconds until `key` has a free slot (0 when it has one now)."""
        events = self._events.get(key)
        if events is None or len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window - self._clock())

    def release(self, key: K, stamp: float) -> None:
        """Give back a slot taken by `reserve`."""
        events = self._events.get(key)
        if events is None:
            return
        # Slots taken at the same instant are interchangeable, so removing the first
        # equal stamp is exact; a stamp already pruned out of the window is gone anyway.
        try:
            events.remove(stamp)
        except ValueError:
            pass

    def forget_idle(self) -> None:
        """Drop keys with nothing in the window (the janitor calls this now and then)."""
        cutoff = self._clock() - self.window
        for key in [k for k, v in self._events.items() if not v or v[-1] <= cutoff]:
            del self._events[key]

    def _make_room(self) -> None:
        self.forget_idle()
        if len(self._events) < self.max_keys:
            return
        # Every tracked key is active: forget the longest-tracked tenth (they start
        # afresh) rather than grow without bound; a tenth keeps the next sweep far off.
        excess = len(self._events) - self.max_keys + max(1, self.max_keys // 10)
        for key in list(itertools.islice(self._events, excess)):
            del self._events[key]
