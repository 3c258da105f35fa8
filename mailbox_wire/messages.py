"""Messages: sending, the message view, the inbox, acknowledgements, sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mailbox_wire.base import AgentName, ObjectId, Request, Response, Seq
from mailbox_wire.connections import IncomingRequest


class Encryption(Request):
    algorithm: Literal["openpgp"]
    format: Literal["armored"]


class SendRequest(Request):
    to: AgentName
    # The byte limit is checked by the service (it is configurable); this bound
    # only keeps absurd bodies out of the validator.
    content: Annotated[str, StringConstraints(min_length=1, max_length=4 * 1024 * 1024)]
    subject: Annotated[str, StringConstraints(max_length=200)] | None = None
    session_id: ObjectId | None = None
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    encrypted: bool = False
    encryption: Encryption | None = None


class SendResponse(Response):
    message_id: str
    session_id: str
    seq: int = Field(description="The recipient's sequence number of this message")
    created_at: datetime


class Message(Response):
    message_id: str
    seq: int
    session_id: str
    from_agent: str
    to_agent: str
    subject: str
    content: str
    created_at: datetime
    correlation_id: str | None
    encrypted: bool
    encryption: dict[str, str] | None
    delivered_at: datetime | None = Field(
        description="When the recipient acknowledged the message; null until then"
    )


class Inbox(Response):
    messages: list[Message]
    connection_requests: list[IncomingRequest]
    next_since: int = Field(description="Pass as `since` to continue after these messages")


class AckRequest(Request):
    up_to_seq: Seq | None = None
    message_ids: Annotated[list[ObjectId], Field(min_length=1, max_length=500)] | None = None


class AckResponse(Response):
    status: Literal["ok"] = "ok"
    acknowledged_up_to_seq: int


class SessionSummary(Response):
    session_id: str
    subject: str
    participants: list[str]
    created_at: datetime


class SessionList(Response):
    sessions: list[SessionSummary]


class SessionHistory(Response):
    session_id: str
    subject: str
    participants: list[str]
    messages: list[Message]
