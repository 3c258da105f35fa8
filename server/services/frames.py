"""The WebSocket frames the server pushes, serialised once per event."""

from __future__ import annotations

import json
from typing import Any

from .. import schemas


def _dump(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def message(msg: schemas.Message) -> str:
    return _dump({"type": "message", "message": msg.model_dump(mode="json")})


def connection_request(request: schemas.IncomingRequest) -> str:
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
