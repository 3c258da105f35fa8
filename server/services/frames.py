"""The WebSocket frames the server pushes, serialised once per event."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import mailbox_wire as wire


def _dump(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def message(msg: wire.Message) -> str:
    return _dump({"type": "message", "message": msg.model_dump(mode="json")})


def new_message(
    *,
    message_id: str,
    seq: int,
    session_id: str,
    from_agent: str,
    to_agent: str,
    subject: str,
    content: str,
    created_at: datetime,
    correlation_id: str | None,
    encrypted: bool,
    encryption: dict[str, str] | None,
) -> str:
    """The frame of a message just sent, built without a model (the send hot path);
    the same JSON as `message(wire.Message(...))`, which a test checks."""
    return _dump(
        {
            "type": "message",
            "message": {
                "message_id": message_id,
                "seq": seq,
                "session_id": session_id,
                "from_agent": from_agent,
                "to_agent": to_agent,
                "subject": subject,
                "content": content,
                "created_at": created_at.isoformat().replace("+00:00", "Z"),
                "correlation_id": correlation_id,
                "encrypted": encrypted,
                "encryption": encryption,
                # Just sent, so not yet acknowledged.
                "delivered_at": None,
            },
        }
    )


def connection_request(request: wire.IncomingRequest) -> str:
    # Built from IncomingRequest, which has no code field: the target never sees it.
    return _dump({"type": "connection_request", **request.model_dump(mode="json")})


def connection_approved(peer_agent_name: str, connected_at: str, request_id: str) -> str:
    return _dump(
        {
            "type": "connection_approved",
            "peer_agent_name": peer_agent_name,
            "connected_at": connected_at,
            "request_id": request_id,
        }
    )


def connection_revoked(peer_agent_name: str) -> str:
    return _dump({"type": "connection_revoked", "peer_agent_name": peer_agent_name})


def auth_ok(agent_id: str, agent_name: str) -> str:
    return _dump({"type": "auth_ok", "agent_id": agent_id, "agent_name": agent_name})
