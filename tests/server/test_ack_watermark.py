"""Acknowledgements: coalesced in memory, written apart from the send counter, never lost.

Servers here write socket acks every 60 s unless something forces a write, so each
test shows which event wrote them (close, ping, a read, shutdown) or that a crash
before the write only replays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from server.app import create_fastapi_app
from server.db import Database
from server.models import ack_watermark_moves, messages
from server.services import ack_store
from server.settings import Settings
from tests.helpers import Agent, Socket, connect_agents, register
from tests.servers import ServerProcess, ServerThread, server_settings
from tests.waiting import wait_until

SLOW_TIMER = {"MAILBOX_ACK_FLUSH_SECONDS": 60, "MAILBOX_LOG_LEVEL": "warning"}


@pytest.fixture
def slow_timer(fresh_database_url: str) -> Iterator[ServerThread]:
    """A server whose ack timer never fires within a test."""
    with ServerThread(server_settings(fresh_database_url, **SLOW_TIMER)) as running:
        yield running


def _pair(url: str) -> tuple[Agent, Agent]:
    a, b = register(url, "alice"), register(url, "bob")
    connect_agents(a, b)
    return a, b


def _stored(database_url: str, agent_id: str) -> dict[str, Any]:
    """What the database holds for an agent's acks: watermark, moves, acked message rows."""

    async def read() -> dict[str, Any]:
        database = Database(Settings(_env_file=None, DATABASE_URL=database_url))  # type: ignore[call-arg]
        try:
            async with database.read() as conn:
                watermark = await ack_store.watermark(conn, agent_id)
                moves = (
                    await conn.execute(
                        select(ack_watermark_moves.c.up_to_seq)
                        .where(ack_watermark_moves.c.agent_id == agent_id)
                        .order_by(ack_watermark_moves.c.up_to_seq)
                    )
                ).scalars()
                rewritten = (
                    await conn.execute(
                        select(messages.c.seq).where(
                            messages.c.to_agent_id == agent_id, messages.c.acked_at.is_not(None)
                        )
                    )
                ).scalars()
                return {"watermark": watermark, "moves": list(moves), "rows": list(rewritten)}
        finally:
            await database.dispose()

    return asyncio.run(read())


def _receive(ws: Socket, n: int) -> list[dict[str, Any]]:
    return [ws.recv_type("message")["message"] for _ in range(n)]


def _delivered_at(reader: Agent, message_id: str, deadline: float) -> str:
    """The sender's receipt, asked for until it is set or the deadline passes (no pause:
    each request takes its own time, and the sender's reads force no write)."""
    stamp: str = wait_until(
        lambda: reader.get(f"/messages/{message_id}").json()["delivered_at"],
        lambda at: at is not None,
        within=deadline,
        what=f"{message_id} delivered",
        every=0,
    )
    return stamp


def test_a_socket_ack_is_written_by_the_timer_without_any_further_frame(
    server: ServerThread,
) -> None:
    a, b = _pair(server.url)
    sent = a.send(b, "one")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        [frame] = _receive(ws, 1)
        before = datetime.now(UTC)
        ws.send({"type": "ack", "up_to_seq": frame["seq"]})
        # The socket stays open and silent: only the timer can write the ack.
        stamp = _delivered_at(a, sent["message_id"], deadline=5)
    assert before <= datetime.fromisoformat(stamp)


def test_acks_are_held_in_memory_until_the_timer(slow_timer: ServerThread) -> None:
    a, b = _pair(slow_timer.url)
    a.send(b, "one")
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        [frame] = _receive(ws, 1)
        ws.send({"type": "ack", "up_to_seq": frame["seq"]})
        # An echo of a later frame: the ack before it has been read by the server.
        ws.send({"type": "nonsense"})
        ws.recv_type("error")
        assert _stored(slow_timer.settings.database_url, b.agent_id)["watermark"] == 0
        ws.send({"type": "ping"})
        ws.recv_type("pong")
        assert _stored(slow_timer.settings.database_url, b.agent_id)["watermark"] == 1


def test_a_pong_means_every_ack_before_it_is_committed(slow_timer: ServerThread) -> None:
    a, b = _pair(slow_timer.url)
    sent = [a.send(b, f"m{i}") for i in range(3)]
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        frames = _receive(ws, 3)
        ws.send({"type": "ack", "up_to_seq": frames[1]["seq"]})
        ws.send({"type": "ping"})
        ws.recv_type("pong")
        assert a.get(f"/messages/{sent[1]['message_id']}").json()["delivered_at"] is not None
        assert a.get(f"/messages/{sent[2]['message_id']}").json()["delivered_at"] is None


def test_closing_the_socket_writes_its_acks_without_waiting_for_the_timer(
    slow_timer: ServerThread,
) -> None:
    a, b = _pair(slow_timer.url)
    sent = a.send(b, "one")
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        [frame] = _receive(ws, 1)
        ws.send({"type": "ack", "up_to_seq": frame["seq"]})
    _delivered_at(a, sent["message_id"], deadline=5)
    assert _stored(slow_timer.settings.database_url, b.agent_id)["watermark"] == 1


def test_the_inbox_never_shows_a_message_the_socket_acknowledged(
    slow_timer: ServerThread,
) -> None:
    a, b = _pair(slow_timer.url)
    for i in range(3):
        a.send(b, f"m{i}")
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        frames = _receive(ws, 3)
        ws.send({"type": "ack", "up_to_seq": frames[1]["seq"]})
        ws.send({"type": "nonsense"})
        ws.recv_type("error")  # the ack has been read, not written
        inbox = b.get("/inbox").json()
        ack = b.post("/inbox/ack", {"message_ids": [frames[2]["message_id"]]}).json()
    assert [m["seq"] for m in inbox["messages"]] == [3]
    assert ack["acknowledged_up_to_seq"] == 3


@pytest.mark.parametrize(
    "spelling",
    [
        '{{"type":"ack","up_to_seq":{}}}',
        '{{"type": "ack", "up_to_seq": {}}}',
        '{{"up_to_seq": {}, "type": "ack"}}',
        '{{ "type" : "ack" , "up_to_seq" : {} }}',
    ],
)
def test_an_ack_is_taken_in_any_json_spelling(slow_timer: ServerThread, spelling: str) -> None:
    a, b = _pair(slow_timer.url)
    a.send(b, "one")
    a.send(b, "two")
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        _receive(ws, 2)
        ws.conn.send(spelling.format(1))
        ws.send({"type": "ping"})
        ws.recv_type("pong")
    assert _stored(slow_timer.settings.database_url, b.agent_id)["watermark"] == 1


def test_a_bad_ack_is_answered_and_a_binary_frame_closes_after_the_acks_before_it_land(
    slow_timer: ServerThread,
) -> None:
    a, b = _pair(slow_timer.url)
    a.send(b, "one")
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        _receive(ws, 1)
        # Too large for the database: taken, it would fail every later batch of acks.
        ws.send({"type": "ack", "up_to_seq": 2**63})
        assert "up_to_seq" in ws.recv_type("error")["message"]
        ws.send({"type": "ack", "up_to_seq": 1})
        # Frames are JSON text: a binary one closes the socket (1003, issue 13).
        ws.conn.send(b'{"type":"ack","up_to_seq":1}')
        with pytest.raises(ConnectionClosed):
            ws.recv_type("never")
        assert ws.conn.close_code == 1003
    with Socket(slow_timer.ws_url) as ws:
        ws.auth(b.api_key)
        ws.send({"type": "ping"})
        # The ack before the binary frame counted: nothing is replayed.
        assert ws.recv()["type"] == "pong"
    assert _stored(slow_timer.settings.database_url, b.agent_id)["watermark"] == 1


def test_a_newer_socket_starts_after_the_acks_of_the_one_it_replaces(
    slow_timer: ServerThread,
) -> None:
    a, b = _pair(slow_timer.url)
    for i in range(3):
        a.send(b, f"m{i}")
    with Socket(slow_timer.ws_url) as old:
        old.auth(b.api_key)
        frames = _receive(old, 3)
        old.send({"type": "ack", "up_to_seq": frames[2]["seq"]})
        old.send({"type": "nonsense"})
        old.recv_type("error")
        with Socket(slow_timer.ws_url) as new:
            new.auth(b.api_key)
            a.send(b, "after the replacement")
            first = new.recv_type("message")["message"]
    assert (first["seq"], first["content"]) == (4, "after the replacement")


def test_a_watermark_ack_rewrites_no_message_row_and_logs_one_move(
    server: ServerThread,
) -> None:
    a, b = _pair(server.url)
    for i in range(4):
        a.send(b, f"m{i}")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        frames = _receive(ws, 4)
        for frame in frames[:3]:
            ws.send({"type": "ack", "up_to_seq": frame["seq"]})
        ws.send({"type": "ping"})
        ws.recv_type("pong")
    b.post("/inbox/ack", {"up_to_seq": 4})
    stored = _stored(server.settings.database_url, b.agent_id)
    assert stored["watermark"] == 4 and stored["rows"] == []
    # The three socket acks went out in one write (or more, if the timer cut them).
    assert stored["moves"][-1] == 4 and 2 <= len(stored["moves"]) <= 4


def test_delivered_at_is_the_time_the_watermark_first_passed_the_message(
    server: ServerThread,
) -> None:
    a, b = _pair(server.url)
    sent = [a.send(b, f"m{i}") for i in range(3)]
    b.post("/inbox/ack", {"up_to_seq": 1})
    first = a.get(f"/messages/{sent[0]['message_id']}").json()["delivered_at"]
    between = datetime.now(UTC)
    b.post("/inbox/ack", {"up_to_seq": 3})
    later = [a.get(f"/messages/{m['message_id']}").json()["delivered_at"] for m in sent]
    assert later[0] == first and datetime.fromisoformat(first) <= between
    assert later[1] == later[2] and datetime.fromisoformat(later[1]) >= between


def test_shutdown_writes_the_acks_still_in_memory(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, **SLOW_TIMER)
    with ServerProcess(settings) as process:
        a, b = _pair(process.url)
        a.send(b, "one")
        with Socket(process.ws_url) as ws:
            ws.auth(b.api_key)
            [frame] = _receive(ws, 1)
            ws.send({"type": "ack", "up_to_seq": frame["seq"]})
            ws.send({"type": "nonsense"})
            ws.recv_type("error")
            process.stop()  # SIGTERM while the socket is still open
    assert _stored(fresh_database_url, b.agent_id)["watermark"] == 1


def test_shutdown_writes_acks_that_no_socket_close_wrote(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, **SLOW_TIMER)
    with ServerThread(settings) as running:
        a, b = _pair(running.url)
        a.send(b, "one")

    async def serve_and_stop() -> None:
        app = create_fastapi_app(settings)
        async with app.router.lifespan_context(app):
            # As if a socket's own write at close had failed: only shutdown is left.
            app.state.services.acks.note(b.agent_id, 1)

    asyncio.run(serve_and_stop())
    assert _stored(fresh_database_url, b.agent_id)["watermark"] == 1


def test_a_crash_before_the_write_replays_the_acknowledged_messages_and_loses_none(
    fresh_database_url: str,
) -> None:
    settings = server_settings(fresh_database_url, **SLOW_TIMER)
    with ServerProcess(settings) as process:
        a, b = _pair(process.url)
        for i in range(3):
            a.send(b, f"m{i}")
        with Socket(process.ws_url) as ws:
            ws.auth(b.api_key)
            frames = _receive(ws, 3)
            ws.send({"type": "ack", "up_to_seq": frames[0]["seq"]})
            ws.send({"type": "ping"})
            ws.recv_type("pong")  # message 1 is acknowledged for good
            ws.send({"type": "ack", "up_to_seq": frames[2]["seq"]})
            ws.send({"type": "nonsense"})
            ws.recv_type("error")  # read, still only in memory
            process.kill()
    with ServerProcess(settings) as process, Socket(process.ws_url) as ws:
        ws.auth(b.api_key)
        replayed = [m["content"] for m in _receive(ws, 2)]
        a.send(b, "after the crash")  # the same port: the restarted server
        live = ws.recv_type("message")["message"]
    assert replayed == ["m1", "m2"]
    assert (live["seq"], live["content"]) == (4, "after the crash")


@pytest.mark.anyio
async def test_a_send_is_not_blocked_by_an_ack_transaction_holding_its_locks(
    server: ServerThread,
) -> None:
    if server.settings.is_sqlite:
        pytest.skip("SQLite has one writer by design; its ack write takes microseconds")
    a, b = _pair(server.url)
    a.send(b, "one")
    raw = await asyncpg.connect(server.settings.database_url.replace("+asyncpg", "", 1))
    try:
        async with raw.transaction():
            # An ack of b's in flight, not committed: it holds every lock an ack takes.
            acked = ack_store.Ack(b.agent_id, 1, datetime.now(UTC))
            assert await ack_store.advance_postgres(raw, [acked]) == {b.agent_id: 1}
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                # Before the watermark had its own table, this waited on the ack's lock.
                answer = await asyncio.wait_for(
                    http.post(
                        "/messages/send",
                        json={"to": b.name, "content": "two", "subject": "s"},
                        headers=a.auth,
                    ),
                    timeout=5,
                )
        assert answer.status_code == 201, answer.text
        assert answer.json()["seq"] == 2
    finally:
        await raw.close()
