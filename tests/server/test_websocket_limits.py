"""What one WebSocket may cost, whatever its client does (issue 13).

A client that stops reading is closed (1013) when a send waits past its
deadline or its live queue passes its byte budget, and cut off when it misses a
pong; a replaced socket stops writing at once; open sockets are capped per
address; every client frame counts against a rate. Nothing is lost: what was
not acknowledged comes again on the next socket.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.helpers import Agent, Socket, connect_agents, register
from tests.server.raw_ws import RawSocket
from tests.servers import ServerThread, server_settings
from tests.waiting import wait_until

BIG = "x" * 60_000  # close to the 64 KiB content limit
# Far more than loopback TCP and uvicorn's 64 KiB buffer hold for a client with a
# 4 KiB receive buffer, so the server's sends to it soon block.
BACKLOG = 150


def _server(fresh_database_url: str, **overrides: object) -> ServerThread:
    return ServerThread(server_settings(fresh_database_url, **overrides))


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    return a, b


def _queue(sender: Agent, recipient: Agent, count: int) -> None:
    for i in range(count):
        sender.send(recipient, f"{i:05d}{BIG}")


def _admitted(server: ServerThread, agent: Agent, timeout: float = 15) -> Socket:
    """An authenticated socket of `agent`, opened again until one is let in: with one
    socket allowed per address, that happens once the server let go of the one before."""

    def let_in() -> Socket | None:
        ws = Socket(server.ws_url)
        try:
            if ws.auth(agent.api_key)["type"] == "auth_ok":
                return ws
        except ConnectionClosed:
            assert ws.conn.close_code == 4029, ws.conn.close_code
        with contextlib.suppress(ConnectionClosed):
            ws.close()
        return None

    # no pause between tries: each one is a round trip of its own
    admitted = wait_until(
        let_in, within=timeout, what="the server to let go of the socket before", every=0
    )
    assert admitted is not None
    return admitted


def _wait_until_admitted(server: ServerThread, probe: Agent) -> None:
    _admitted(server, probe).close()


def _replayed_in_full(server: ServerThread, recipient: Agent, count: int) -> list[int]:
    with _admitted(server, recipient) as ws:
        return [ws.recv_type("message", timeout=10)["message"]["seq"] for _ in range(count)]


def test_a_client_that_stops_reading_is_closed_with_1013_and_loses_nothing(
    fresh_database_url: str,
) -> None:
    with _server(
        fresh_database_url, MAILBOX_WS_SEND_TIMEOUT=0.5, MAILBOX_WS_MAX_SOCKETS_PER_CLIENT=1
    ) as server:
        a, b = _pair(server)
        probe = register(server.url, "probe")
        _queue(a, b, BACKLOG)
        with RawSocket(server.ws_url) as stuck:
            assert stuck.auth(b.api_key)["type"] == "auth_ok"
            # It reads nothing more; the server lets go of it by itself.
            _wait_until_admitted(server, probe)
            frames, code = stuck.drain()
        assert code == 1013
        assert len(frames) < BACKLOG
        assert _replayed_in_full(server, b, BACKLOG) == list(range(1, BACKLOG + 1))


def test_the_live_queue_is_bounded_in_bytes(fresh_database_url: str) -> None:
    with _server(
        fresh_database_url,
        MAILBOX_WS_SEND_QUEUE_BYTES=64 * 1024,
        MAILBOX_WS_SEND_TIMEOUT=60,
        MAILBOX_WS_MAX_SOCKETS_PER_CLIENT=1,
    ) as server:
        a, b = _pair(server)
        probe = register(server.url, "probe")
        with RawSocket(server.ws_url) as stuck:
            assert stuck.auth(b.api_key)["type"] == "auth_ok"
            # Far fewer frames than the frame limit (1,024), far more bytes than 64 KiB.
            _queue(a, b, BACKLOG)
            _wait_until_admitted(server, probe)
            frames, code = stuck.drain()
        assert code == 1013
        assert len(frames) < BACKLOG
        assert _replayed_in_full(server, b, BACKLOG) == list(range(1, BACKLOG + 1))


def test_a_replaced_socket_stops_sending_its_backlog_at_once(fresh_database_url: str) -> None:
    with _server(fresh_database_url) as server:
        a, b = _pair(server)
        _queue(a, b, BACKLOG)
        with RawSocket(server.ws_url) as stuck:
            assert stuck.auth(b.api_key)["type"] == "auth_ok"
            # The newer socket gets everything; the older, stuck in its backlog,
            # gets nothing past what its buffers already held, then 4000.
            assert _replayed_in_full(server, b, BACKLOG) == list(range(1, BACKLOG + 1))
            frames, code = stuck.drain()
        assert code == 4000
        assert len(frames) < BACKLOG


def test_a_client_that_misses_pongs_is_cut_off(fresh_database_url: str) -> None:
    with _server(
        fresh_database_url,
        MAILBOX_WS_PING_INTERVAL=0.5,
        MAILBOX_WS_SEND_TIMEOUT=60,
        MAILBOX_WS_MAX_SOCKETS_PER_CLIENT=1,
    ) as server:
        a, b = _pair(server)
        probe = register(server.url, "probe")
        _queue(a, b, BACKLOG)
        with RawSocket(server.ws_url) as stuck:
            assert stuck.auth(b.api_key)["type"] == "auth_ok"
            _wait_until_admitted(server, probe)
            frames, code = stuck.drain()
        # Cut off (its buffered frames dropped), not left waiting for it to read.
        assert code is None
        assert len(frames) < BACKLOG


def test_open_sockets_per_client_address_are_capped_with_4029(fresh_database_url: str) -> None:
    with _server(
        fresh_database_url, MAILBOX_WS_MAX_SOCKETS_PER_CLIENT=2, MAILBOX_WS_AUTH_TIMEOUT=30
    ) as server:
        probe = register(server.url, "probe")
        first, second = Socket(server.ws_url), Socket(server.ws_url)
        try:
            with Socket(server.ws_url) as third:
                with pytest.raises(ConnectionClosed):
                    third.recv(timeout=5)
                assert third.conn.close_code == 4029
        finally:
            first.close()
        try:
            _wait_until_admitted(server, probe)  # the first one's slot came back
        finally:
            second.close()


def test_every_client_frame_counts_against_the_frame_rate(fresh_database_url: str) -> None:
    with _server(
        fresh_database_url, MAILBOX_WS_FRAMES_PER_SECOND=50, MAILBOX_WS_FRAME_BURST=50
    ) as server:
        a, b = _pair(server)
        for _ in range(3):
            a.send(b, "to acknowledge")
        with Socket(server.ws_url) as ws:
            ws.auth(b.api_key)
            started = time.monotonic()
            for i in range(150):
                ws.send({"type": "ack", "up_to_seq": i % 3 + 1})
            ws.send({"type": "ping"})
            ws.recv_type("pong", timeout=15)
            elapsed = time.monotonic() - started
        # 151 frames, 50 at once and 50 a second after: the pong cannot come before ~2 s.
        assert elapsed >= 1.5
        # Paced, not dropped: every ack took effect.
        assert b.get("/inbox").json()["messages"] == []
