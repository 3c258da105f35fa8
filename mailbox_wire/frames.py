"""The WebSocket frames of `/ws` (contract section 5), as models.

The server writes its frames by hand (`server/services/frames.py`, the send hot
path builds no model) and reads the client's defensively
(`server/api/ws_client_frames.py`); these models describe the same JSON for a
client, which reads a frame with `read_server_frame`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mailbox_wire.base import Response
from mailbox_wire.connections import IncomingRequest
from mailbox_wire.messages import Message

# --- client → server ------------------------------------------------------------------


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthFrame(ClientFrame):
    """The first frame, within the auth timeout; `since` resumes after that seq."""

    type: Literal["auth"] = "auth"
    api_key: str
    since: int | None = None


class AckFrame(ClientFrame):
    type: Literal["ack"] = "ack"
    up_to_seq: int


# --- server → client ------------------------------------------------------------------


class AuthOk(Response):
    type: Literal["auth_ok"] = "auth_ok"
    agent_id: str
    agent_name: str


class MessageFrame(Response):
    type: Literal["message"] = "message"
    message: Message


class ConnectionRequestFrame(IncomingRequest):
    """Never carries the verification code: only the requester's owner has it."""

    type: Literal["connection_request"] = "connection_request"


class ConnectionApproved(Response):
    type: Literal["connection_approved"] = "connection_approved"
    peer_agent_name: str
    connected_at: datetime
    request_id: str


class ConnectionRevoked(Response):
    type: Literal["connection_revoked"] = "connection_revoked"
    peer_agent_name: str


ConnectionEvent = ConnectionRequestFrame | ConnectionApproved | ConnectionRevoked
ServerFrame = AuthOk | MessageFrame | ConnectionEvent

_SERVER_FRAMES: dict[str, type[ServerFrame]] = {
    "auth_ok": AuthOk,
    "message": MessageFrame,
    "connection_request": ConnectionRequestFrame,
    "connection_approved": ConnectionApproved,
    "connection_revoked": ConnectionRevoked,
}


def read_server_frame(data: Any) -> ServerFrame | None:
    """The frame in `data` (parsed JSON), or None for a type this client does not know
    (a newer server may add some). Unknown fields are ignored for the same reason;
    a known frame of the wrong shape raises `pydantic.ValidationError`."""
    kind = data.get("type") if isinstance(data, dict) else None
    model = _SERVER_FRAMES.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None
    return model.model_validate(data, extra="ignore")
