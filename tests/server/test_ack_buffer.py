"""The in-memory ack buffer alone: what it writes, when, and what survives a failed write."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from server.services.ack_buffer import AckBuffer
from server.services.ack_store import Ack

pytestmark = pytest.mark.anyio


class Recorder:
    """A stand-in database: records batches, can be made to fail or to block."""

    def __init__(self) -> None:
        self.batches: list[dict[str, int]] = []
        self.written = asyncio.Event()
        self.failures = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def write(self, acks: list[Ack]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise OSError("database down")
        self.batches.append({a.agent_id: a.up_to_seq for a in acks})
        self.written.set()


async def test_one_batch_holds_the_newest_ack_of_every_agent() -> None:
    db = Recorder()
    buffer = AckBuffer(db.write, interval=60)
    for seq in (3, 5, 4):
        buffer.note("b", seq)
    buffer.note("c", 1)
    await buffer.flush()
    assert db.batches == [{"b": 5, "c": 1}]
    await buffer.flush()  # nothing left: no empty write
    assert len(db.batches) == 1


async def test_the_timer_writes_an_interval_after_the_first_ack() -> None:
    db = Recorder()
    buffer = AckBuffer(db.write, interval=0.2)
    timer = buffer.start()
    try:
        started = anyio.current_time()
        buffer.note("b", 1)
        buffer.note("b", 2)
        with anyio.fail_after(5):
            await db.written.wait()
        assert anyio.current_time() - started >= 0.2
        assert db.batches == [{"b": 2}] and buffer.pending == 0
    finally:
        timer.cancel()


async def test_a_failed_write_keeps_the_acks_and_a_later_flush_writes_them() -> None:
    db = Recorder()
    db.failures = 1
    buffer = AckBuffer(db.write, interval=60)
    buffer.note("b", 7)
    with pytest.raises(OSError):
        await buffer.flush()
    assert buffer.has_pending("b")
    await buffer.flush()
    assert db.batches == [{"b": 7}]


async def test_an_ack_that_arrives_during_a_write_stays_for_the_next_batch() -> None:
    db = Recorder()
    db.gate = asyncio.Event()
    buffer = AckBuffer(db.write, interval=60)
    buffer.note("b", 1)
    first = asyncio.create_task(buffer.flush())
    with anyio.fail_after(5):
        await db.entered.wait()
    buffer.note("b", 2)
    db.gate.set()
    await first
    assert buffer.has_pending("b")
    await buffer.flush()
    assert db.batches == [{"b": 1}, {"b": 2}]


async def test_flushing_an_agent_waits_for_the_batch_in_flight_that_holds_its_ack() -> None:
    db = Recorder()
    db.gate = asyncio.Event()
    buffer = AckBuffer(db.write, interval=60)
    buffer.note("b", 1)
    in_flight = asyncio.create_task(buffer.flush())
    with anyio.fail_after(5):
        await db.entered.wait()
    waiting = asyncio.create_task(buffer.flush_agent("b"))
    await asyncio.sleep(0)  # let it reach the lock
    assert not waiting.done() and db.batches == []
    db.gate.set()
    with anyio.fail_after(5):
        await asyncio.gather(in_flight, waiting)
    assert db.batches == [{"b": 1}]


async def test_closing_writes_what_is_pending_and_a_failure_is_only_logged() -> None:
    db = Recorder()
    buffer = AckBuffer(db.write, interval=60)
    buffer.note("b", 3)
    await buffer.close()
    assert db.batches == [{"b": 3}]
    db.failures = 1
    buffer.note("b", 4)
    await buffer.close()  # does not raise: shutdown goes on; message 4 will come again
    assert buffer.has_pending("b")
