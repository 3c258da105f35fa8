"""The frames the server writes by hand are the frames the wire models describe.

The server builds its WebSocket frames without models (the send hot path);
the bridge reads them with `mailbox_wire`. A field added on one side only
fails here, not in an agent's listener.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import mailbox_wire as wire
from server.services import frames

NOW = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)


def _strict(model: type[wire.Response], text: str) -> wire.Response:
    # Strictly: an unknown field is a failure here, though a client ignores it.
    return model.model_validate(json.loads(text))


def test_a_new_message_frame_is_a_message_frame() -> None:
    text = frames.new_message(
        message_id="m-1",
        seq=7,
        session_id="s-1",
        from_agent="alice",
        to_agent="bob",
        subject="hello",
        content="hi",
        created_at=NOW,
        correlation_id=None,
        encrypted=True,
        encryption={"algorithm": "openpgp", "format": "armored"},
    )
    frame = _strict(wire.MessageFrame, text)
    assert isinstance(frame, wire.MessageFrame)
    assert frame.message.seq == 7 and frame.message.delivered_at is None
    assert wire.wire_time(frame.message.created_at) == json.loads(text)["message"]["created_at"]
    assert wire.read_server_frame(json.loads(text)) == frame


def test_connection_frames_are_connection_events() -> None:
    request = wire.IncomingRequest(
        request_id="r-1",
        from_agent_name="alice",
        message=None,
        status="pending",
        created_at=NOW,
        expires_at=NOW,
    )
    written = [
        (wire.ConnectionRequestFrame, frames.connection_request(request)),
        (wire.ConnectionApproved, frames.connection_approved("alice", NOW.isoformat(), "r-1")),
        (wire.ConnectionRevoked, frames.connection_revoked("alice")),
        (wire.AuthOk, frames.auth_ok("a-1", "alice")),
    ]
    for model, text in written:
        assert isinstance(_strict(model, text), model)
        assert isinstance(wire.read_server_frame(json.loads(text)), model)


def test_a_frame_type_the_client_does_not_know_is_skipped_not_an_error() -> None:
    assert wire.read_server_frame({"type": "something_new", "x": 1}) is None
    assert wire.read_server_frame(["not", "an", "object"]) is None


def test_the_close_codes_are_the_contracts() -> None:
    assert (wire.CloseCode.REPLACED, wire.CloseCode.BAD_AUTH) == (4000, 4001)
    assert (wire.CloseCode.AUTH_TIMEOUT, wire.CloseCode.LIMIT) == (4008, 4029)
    assert (wire.CloseCode.BINARY, wire.CloseCode.SERVER_ERROR) == (1003, 1011)
    assert wire.CloseCode.OVERFLOW == 1013
