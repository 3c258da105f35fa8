"""`/ws`: first-message auth, backlog, live push after commit, acks, replacement."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.helpers import Agent, Socket, connect_agents, register
from tests.servers import ServerThread, server_settings


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    return a, b


def _close_code(socket: Socket) -> int | None:
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=8)
    return socket.conn.close_code


def test_auth_ok_names_the_agent(server: ServerThread) -> None:
    a = register(server.url)
    with Socket(server.ws_url) as ws:
        assert ws.auth(a.api_key) == {
            "type": "auth_ok",
            "agent_id": a.agent_id,
            "agent_name": a.name,
        }


def test_a_bad_key_is_closed_with_4001(server: ServerThread) -> None:
    with Socket(server.ws_url) as ws:
        ws.send({"type": "auth", "api_key": "amb_wrong"})
        assert _close_code(ws) == 4001


def test_a_non_auth_first_frame_is_closed_with_4001(server: ServerThread) -> None:
    a = register(server.url)
    with Socket(server.ws_url) as ws:
        ws.send({"type": "ack", "up_to_seq": 1, "api_key": a.api_key})
        assert _close_code(ws) == 4001


def test_no_auth_in_time_is_closed_with_4008(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_WS_AUTH_TIMEOUT=0.3)
    with ServerThread(settings) as quick, Socket(quick.ws_url) as ws:
        assert _close_code(ws) == 4008


def test_a_committed_message_is_pushed_live(server: ServerThread) -> None:
    a, b = _pair(server)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        sent = a.send(b, "live!", subject="Now")
        frame = ws.recv_type("message")
    message = frame["message"]
    assert message["message_id"] == sent["message_id"] and message["seq"] == sent["seq"]
    assert message["content"] == "live!" and message["subject"] == "Now"
    assert message["from_agent"] == a.name


def test_backlog_comes_first_in_order_then_live(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(3):
        a.send(b, f"queued {i}")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        backlog = [ws.recv_type("message")["message"]["content"] for _ in range(3)]
        a.send(b, "live")
        live = ws.recv_type("message")["message"]
    assert backlog == ["queued 0", "queued 1", "queued 2"]
    assert live["content"] == "live" and live["seq"] == 4


def test_unacknowledged_messages_come_again_and_acked_ones_do_not(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(3):
        a.send(b, f"m{i}")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        seqs = [ws.recv_type("message")["message"]["seq"] for _ in range(3)]
        ws.send({"type": "ack", "up_to_seq": 2})
        ws.send({"type": "ping"})
        ws.recv_type("pong")  # the ack before it has been handled
    assert seqs == [1, 2, 3]
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        assert ws.recv_type("message")["message"]["seq"] == 3


def test_since_replays_from_a_given_seq(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(4):
        a.send(b, f"m{i}")
    b.post("/inbox/ack", {"up_to_seq": 4})
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key, since=2)
        assert [ws.recv_type("message")["message"]["seq"] for _ in range(2)] == [3, 4]


def test_a_newer_connection_replaces_the_older_with_4000(server: ServerThread) -> None:
    a, b = _pair(server)
    with Socket(server.ws_url) as old, Socket(server.ws_url) as new:
        old.auth(b.api_key)
        new.auth(b.api_key)
        assert _close_code(old) == 4000
        sent = a.send(b, "to the new one")
        assert new.recv_type("message")["message"]["message_id"] == sent["message_id"]


def test_a_large_backlog_arrives_complete_and_in_order(server: ServerThread) -> None:
    a, b = _pair(server)
    for i in range(620):  # more than one backlog page
        a.send(b, f"m{i}")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        seqs = [ws.recv_type("message")["message"]["seq"] for _ in range(620)]
    assert seqs == list(range(1, 621))


def test_unknown_frames_get_an_error_frame_not_a_crash(server: ServerThread) -> None:
    b = register(server.url)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        ws.send({"type": "shout"})
        error = ws.recv_type("error")
        assert error["error"] == "validation_error"
        ws.conn.send("not json")
        assert ws.recv_type("error")["error"] == "validation_error"
        ws.send({"type": "ack", "up_to_seq": -1})
        assert ws.recv_type("error")["error"] == "validation_error"
        ws.send({"type": "ping"})
        assert ws.recv_type("pong") == {"type": "pong"}


def test_connection_events_reach_the_socket(server: ServerThread) -> None:
    a, b = register(server.url), register(server.url)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        code = a.post("/connections/request", {"target_agent_name": b.name}).json()
        frame = ws.recv_type("connection_request")
        assert frame["from_agent_name"] == a.name
        assert code["verification_code"] not in str(frame)
        b.post("/connections/approve", {"verification_code": code["verification_code"]})
        assert ws.recv_type("connection_approved")["peer_agent_name"] == a.name
        a.delete(f"/connections/{b.name}")
        assert ws.recv_type("connection_revoked")["peer_agent_name"] == a.name


def test_the_live_frame_equals_the_backlog_frame_of_the_same_message(server: ServerThread) -> None:
    a, b = _pair(server)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        a.send(b, "same either way", subject="S", correlation_id="corr-9")
        live = ws.recv_type("message")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key, since=0)
        replayed = ws.recv_type("message")
    assert live == replayed


def test_rotating_the_key_closes_its_socket_with_4001(server: ServerThread) -> None:
    a, b = _pair(server)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        rotated = b.post("/agents/me/rotate-key")
        assert rotated.status_code == 200, rotated.text
        # Closed at once: it neither receives the next message nor can acknowledge it.
        a.send(b, "after the rotation")
        with pytest.raises(ConnectionClosed):
            while True:
                assert ws.recv(timeout=5)["type"] != "message"
        assert ws.conn.close_code == 4001
    b.api_key = rotated.json()["api_key"]
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        assert ws.recv_type("message")["message"]["content"] == "after the rotation"
