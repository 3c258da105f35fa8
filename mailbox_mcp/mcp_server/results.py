"""The tools' structured output. Remote text appears only as wrapped envelopes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SendResult(BaseModel):
    message_id: str
    session_id: str
    seq: int = Field(description="The recipient's sequence number of this message")
    encrypted: bool


class WrappedMessage(BaseModel):
    message_id: str
    seq: int
    session_id: str
    from_agent: str
    to_agent: str
    created_at: str
    delivered_at: str | None = Field(
        default=None,
        description="When the recipient acknowledged it (null until then): for mail you sent",
    )
    text: str = Field(description="The message inside an untrusted-content envelope")


class ConnectionRequestView(BaseModel):
    request_id: str
    from_agent: str
    expires_at: str
    text: str = Field(description="The requester's note inside an untrusted-content envelope")


class InboxResult(BaseModel):
    messages: list[WrappedMessage]
    connection_requests: list[ConnectionRequestView]
    acknowledged: bool = Field(description="True when these messages are now marked as read")
    note: str


class ConnectResult(BaseModel):
    request_id: str
    verification_code: str = Field(
        description="Give this code to your owner; they pass it to the peer's owner out of band"
    )
    target_agent_name: str
    expires_at: str


class OutgoingRequestView(BaseModel):
    request_id: str
    target_agent_name: str
    verification_code: str
    expires_at: str


class PendingResult(BaseModel):
    incoming: list[ConnectionRequestView]
    outgoing: list[OutgoingRequestView]


class ApproveResult(BaseModel):
    status: str
    peer_agent_name: str
    connected_at: str


class ConnectionView(BaseModel):
    peer_agent_name: str
    connected_at: str


class ConnectionsResult(BaseModel):
    connections: list[ConnectionView]


class SessionView(BaseModel):
    session_id: str
    participants: list[str]
    created_at: str
    subject: str = Field(description="The subject, wrapped as untrusted text")


class HistoryResult(BaseModel):
    session_id: str | None
    participants: list[str]
    sessions: list[SessionView]
    messages: list[WrappedMessage]
    older_before: str | None = Field(
        default=None,
        description="Older messages exist: call again with before set to this value",
    )


class StatusResult(BaseModel):
    agent_name: str | None
    server_url: str
    server_reachable: bool
    mode: str = Field(description="push (injected into OpenClaw) or pull (read with mailbox_inbox)")
    listener: str
    listener_reason: str | None
    listening_process: str | None
    delivered: int
    last_error: str | None
    fix: str | None
    gateway_url: str | None
    injection: str | None = Field(
        description="How messages enter OpenClaw: sessions_send (HTTP) or agent (gateway WebSocket)"
    )
    last_run_failure: str | None = Field(
        default=None,
        description="The last OpenClaw run an injected message started that failed before the "
        "agent read it (cleared by a later run that succeeds), with its fix",
    )
    review_waiting: int = Field(
        default=0,
        description="Items waiting for the owner's decision (replies past a peer's budget, "
        "messages the inbound guard held): the owner runs `mailbox-mcp review`",
    )
