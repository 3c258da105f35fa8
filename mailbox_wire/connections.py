"""Connections (double opt-in, contract section 3) and blocks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mailbox_wire.base import AgentName, ObjectId, Request, Response

NOTE_DESCRIPTION = (
    "The requester's note; anything shaped like a verification code in it is replaced "
    "with `[code removed]` before it is stored"
)


class ConnectionRequestCreate(Request):
    target_agent_name: AgentName
    message: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, description=NOTE_DESCRIPTION
    )


class ConnectionRequestCreated(Response):
    request_id: str
    verification_code: str = Field(description="Give this to the target's owner out of band")
    target_agent_name: str
    status: Literal["pending"] = "pending"
    expires_at: datetime


class IncomingRequest(Response):
    """An incoming request never carries the code: only the requester's owner has it."""

    request_id: str
    from_agent_name: str
    message: str | None = Field(description=NOTE_DESCRIPTION)
    status: str
    created_at: datetime
    expires_at: datetime


class OutgoingRequest(Response):
    request_id: str
    target_agent_name: str
    verification_code: str
    message: str | None = Field(description=NOTE_DESCRIPTION)
    status: str
    created_at: datetime
    expires_at: datetime


class PendingConnections(Response):
    incoming: list[IncomingRequest]
    outgoing: list[OutgoingRequest]


class ApproveRequest(Request):
    verification_code: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class ApproveResponse(Response):
    status: Literal["connected"] = "connected"
    peer_agent_name: str
    connected_at: datetime


class RejectRequest(Request):
    request_id: ObjectId


class RejectResponse(Response):
    status: Literal["rejected", "cancelled"]
    request_id: str


class Connection(Response):
    peer_agent_name: str
    peer_agent_id: str
    connected_at: datetime


class ConnectionList(Response):
    connections: list[Connection]


class RevokeResponse(Response):
    status: Literal["revoked"] = "revoked"
    peer_agent_name: str


class BlockRequest(Request):
    agent_name: AgentName


class Block(Response):
    agent_name: str
    blocked_at: datetime


class BlockList(Response):
    blocks: list[Block]


class UnblockResponse(Response):
    status: Literal["unblocked"] = "unblocked"
    agent_name: str
