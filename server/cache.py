"""A small bounded LRU map for what the hot path must not re-read from the database.

With several server processes (contract §10) another process's change reaches
this one as an invalidation (`server/cluster.py`). A reader that filled the cache
from a database read taken before such an invalidation would put the old answer
back for good; so a reader notes `generation` before its read and fills with it,
and the fill is dropped if anything was invalidated meanwhile. While the cluster
listener is down the cache is switched off: nothing is answered from it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.enabled = True
        self.generation = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store what this process itself just wrote (or knows cannot change)."""
        if not self.enabled:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def fill(self, key: K, value: V, generation: int) -> None:
        """Store what was read from the database when `generation` was current."""
        if generation == self.generation:
            self.put(key, value)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def invalidate(self, key: K) -> None:
        """Another process changed it: drop it, and any fill read before now."""
        self.generation += 1
        self._items.pop(key, None)

    def invalidate_all(self) -> None:
        self.generation += 1
        self._items.clear()

    def switch_off(self) -> None:
        self.enabled = False
        self.invalidate_all()

    def switch_on(self) -> None:
        self.invalidate_all()
        self.enabled = True

    def clear(self) -> None:
        self._items.clear()
