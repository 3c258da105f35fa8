"""Wire models: what clients send and receive. Depends on pydantic only.

Request models forbid unknown fields and bound every string, so bad input is a
422 before it reaches a service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"

AgentName = Annotated[str, StringConstraints(pattern=AGENT_NAME_PATTERN)]
# Ids are UUIDs we issued; the pattern also keeps NUL and odd bytes away from the database.
OBJECT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ObjectId = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN)]
MAX_SEQ = 2**62
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


def _refuse_nul(value: object) -> object:
    # NUL is valid JSON but no text column can hold it (PostgreSQL refuses it, SQLite
    # truncates at it in places): refuse it everywhere, the same on every backend.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000) characters")
    if isinstance(value, list):
        for item in value:
            _refuse_nul(item)
    return value


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Response):
    error: str = Field(description="Stable snake_case error code")
    message: str = Field(description="What went wrong, for humans")


class OkBody(Response):
    status: Literal["ok"] = "ok"


# --- agents ---------------------------------------------------------------


class RegisterRequest(Request):
    name: AgentName = Field(description="Unique agent name: a-z, 0-9 and dashes, 3–32 chars")
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class RegisterResponse(Response):
    agent_id: str
    name: str
    api_key: str = Field(description="Shown once; only its hash is stored")


class AgentMe(Response):
    agent_id: str
    name: str
    description: str | None
    created_at: datetime


class RotateKeyResponse(Response):
    api_key: str


# --- connections ------------------------------------------------------------


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


# --- messages -----------------------------------------------------------------


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


# --- directory ----------------------------------------------------------------


class DirectoryRegister(Request):
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]
    algorithm: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    key_version: Annotated[int, Field(ge=1, le=1_000_000)]
    openpgp_public_key: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]


class DirectoryEntry(Response):
    agent_id: str
    name: str
    public_key: str | None
    openpgp_public_key: str | None
    key_version: int | None
    fingerprint: str | None


class Health(Response):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
