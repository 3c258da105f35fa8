"""Delivery receipts: `delivered_at` is null until the recipient acknowledges (CONTRACT 9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

import mailbox_wire as schemas
from server.services import frames
from tests.helpers import Agent, Socket, connect_agents, register
from tests.servers import ServerThread


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    return a, b


def _message(reader: Agent, message_id: str) -> dict[str, Any]:
    response = reader.get(f"/messages/{message_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _in_history(reader: Agent, sent: dict[str, Any]) -> dict[str, Any]:
    history = reader.get(f"/sessions/{sent['session_id']}/history").json()
    [message] = [m for m in history["messages"] if m["message_id"] == sent["message_id"]]
    return message


def _receipts(reader: Agent, sent: dict[str, Any]) -> set[str | None]:
    """`delivered_at` of one message as `reader` sees it, by id and in history."""
    return {
        _message(reader, sent["message_id"])["delivered_at"],
        _in_history(reader, sent)["delivered_at"],
    }


def _assert_delivered(message: dict[str, Any], acked_between: tuple[datetime, datetime]) -> None:
    stamp = message["delivered_at"]
    assert isinstance(stamp, str) and stamp.endswith("Z"), message  # UTC, like created_at
    delivered = datetime.fromisoformat(stamp)
    assert delivered.tzinfo is not None and delivered.utcoffset() == UTC.utcoffset(None)
    assert datetime.fromisoformat(message["created_at"]) <= delivered
    low, high = acked_between
    assert low <= delivered <= high, (low, delivered, high)


def test_delivered_at_is_null_in_every_view_until_the_recipient_acknowledges(
    server: ServerThread,
) -> None:
    a, b = _pair(server)
    waiting = a.send(b, "sent before the socket")
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        replayed = ws.recv_type("message")["message"]
        # The backlog page was read before this frame left, so what is sent now is pushed live.
        sent = a.send(b, "hello")
        pushed = ws.recv_type("message")["message"]
    assert replayed["message_id"] == waiting["message_id"]
    assert pushed["message_id"] == sent["message_id"]
    for frame in (replayed, pushed):
        assert "delivered_at" in frame and frame["delivered_at"] is None
    listed = b.get("/inbox").json()["messages"]
    assert [m["delivered_at"] for m in listed] == [None, None]
    for reader in (a, b):
        assert _receipts(reader, sent) == {None}


def test_an_ack_up_to_seq_sets_delivered_at_and_the_sender_sees_it(server: ServerThread) -> None:
    a, b = _pair(server)
    first, second = a.send(b, "one"), a.send(b, "two")
    before = datetime.now(UTC)
    assert b.post("/inbox/ack", {"up_to_seq": first["seq"]}).status_code == 200
    after = datetime.now(UTC)
    by_id = _message(a, first["message_id"])
    _assert_delivered(by_id, (before, after))
    assert _in_history(a, first)["delivered_at"] == by_id["delivered_at"]
    # The recipient's own views agree, and the message not acknowledged stays null.
    assert _receipts(b, first) == {by_id["delivered_at"]}
    [again] = b.get("/inbox", params={"since": 0}).json()["messages"][:1]
    assert again["delivered_at"] == by_id["delivered_at"]
    assert _receipts(a, second) == {None}


def test_an_ack_by_message_ids_sets_delivered_at_out_of_order(server: ServerThread) -> None:
    a, b = _pair(server)
    first, second = a.send(b, "one"), a.send(b, "two")
    before = datetime.now(UTC)
    assert b.post("/inbox/ack", {"message_ids": [second["message_id"]]}).status_code == 200
    after = datetime.now(UTC)
    _assert_delivered(_message(a, second["message_id"]), (before, after))
    assert _receipts(a, first) == {None}
    assert b.post("/inbox/ack", {"message_ids": [first["message_id"]]}).status_code == 200
    _assert_delivered(_message(a, first["message_id"]), (after, datetime.now(UTC)))
    assert len(_receipts(a, first)) == 1 and len(_receipts(b, second)) == 1


def test_a_websocket_ack_sets_delivered_at(server: ServerThread) -> None:
    a, b = _pair(server)
    with Socket(server.ws_url) as ws:
        ws.auth(b.api_key)
        sent = a.send(b, "over the socket")
        frame = ws.recv_type("message")["message"]
        before = datetime.now(UTC)
        ws.send({"type": "ack", "up_to_seq": frame["seq"]})
        # Frames are handled in order: the pong means the ack is committed.
        ws.send({"type": "ping"})
        ws.recv_type("pong")
        after = datetime.now(UTC)
    _assert_delivered(_message(a, sent["message_id"]), (before, after))
    assert len(_receipts(a, sent)) == 1


def test_a_second_ack_keeps_the_first_delivery_time(server: ServerThread) -> None:
    a, b = _pair(server)
    sent = a.send(b, "once delivered")
    b.post("/inbox/ack", {"message_ids": [sent["message_id"]]})
    first = _message(a, sent["message_id"])["delivered_at"]
    assert first is not None
    b.post("/inbox/ack", {"message_ids": [sent["message_id"]]})
    b.post("/inbox/ack", {"up_to_seq": sent["seq"]})
    assert _receipts(a, sent) == {first}


def test_the_frame_of_a_new_message_is_the_message_object_with_delivered_at_null() -> None:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "seq": 7,
        "session_id": "s-1",
        "from_agent": "alice",
        "to_agent": "bob",
        "subject": "Subject",
        "content": "héllo",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "correlation_id": None,
        "encrypted": False,
        "encryption": None,
    }
    built = json.loads(frames.new_message(**fields))
    modelled = json.loads(frames.message(schemas.Message(**fields, delivered_at=None)))
    assert built == modelled
    assert built["message"]["delivered_at"] is None


def test_openapi_documents_delivered_at_and_the_pair_limit(server: ServerThread) -> None:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    message = schema["components"]["schemas"]["Message"]
    assert "delivered_at" in message["required"]
    assert "acknowledged" in message["properties"]["delivered_at"]["description"]
    assert "delivered_at" in schema["paths"]["/messages/{message_id}"]["get"]["description"]
    assert "Retry-After" in schema["paths"]["/messages/send"]["post"]["description"]
