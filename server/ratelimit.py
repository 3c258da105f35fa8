"""In-process rate limits: token buckets for request rates, windows for counted events.

One server process is the design point (see the README); the state lives in
memory and is bounded by dropping idle entries.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

_MAX_TRACKED = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up, per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

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


class WindowCounter:
    """At most `limit` events per key within `window` seconds (sliding)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """0 when another event is allowed now, else seconds to wait."""
        events = self._prune(key, time.monotonic())
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.window - time.monotonic()

    def record(self, key: str) -> None:
        now = time.monotonic()
        if key not in self._events and len(self._events) >= _MAX_TRACKED:
            for stale in [k for k, v in self._events.items() if not v or v[-1] < now - self.window]:
                del self._events[stale]
        self._prune(key, now).append(now)

    def _prune(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        return events
