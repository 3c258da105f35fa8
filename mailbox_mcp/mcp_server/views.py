"""The server's objects as the model sees them: remote text only inside envelopes.

Every text another agent wrote (message content, subjects, request notes)
reaches the model wrapped (`inbound/envelope.py`); ids, names, seq numbers and
times pass as they are, times as the server wrote them.
"""

from __future__ import annotations

import contextlib

import mailbox_wire as wire
from mailbox_mcp.bridge import Bridge
from mailbox_mcp.errors import MailboxAPIError
from mailbox_mcp.inbound import envelope
from mailbox_mcp.inbound.readable import render
from mailbox_mcp.mcp_server.results import (
    ConnectionRequestView,
    ConnectionView,
    OutgoingRequestView,
    SessionView,
    WrappedMessage,
)

__all__ = [
    "view_connection",
    "view_outgoing",
    "wrap_message",
    "wrap_request",
    "wrap_session",
]


async def wrap_message(bridge: Bridge, message: wire.Message) -> WrappedMessage:
    """The message for the model; an encrypted one decrypted and its signature checked."""
    me = None
    if message.encrypted:  # our own sent mail is not readable here: say so, not "error"
        with contextlib.suppress(MailboxAPIError):
            me = (await bridge.identify()).name
    delivered_at = message.delivered_at
    return WrappedMessage(
        message_id=message.message_id,
        seq=message.seq,
        session_id=message.session_id,
        from_agent=message.from_agent,
        to_agent=message.to_agent,
        created_at=wire.wire_time(message.created_at),
        delivered_at=wire.wire_time(delivered_at) if delivered_at is not None else None,
        text=await render(message, bridge.settings, bridge.e2e, me=me),
    )


def wrap_request(request: wire.IncomingRequest) -> ConnectionRequestView:
    source = request.from_agent_name
    return ConnectionRequestView(
        request_id=request.request_id,
        from_agent=source,
        expires_at=wire.wire_time(request.expires_at),
        text=envelope.wrap_remote_text(
            source=source, label="connection request note", text=request.message or ""
        ),
    )


def wrap_session(bridge: Bridge, session: wire.SessionSummary) -> SessionView:
    others = [
        p for p in session.participants if bridge.identity is None or p != bridge.identity.name
    ]
    source = others[0] if others else session.participants[0]
    return SessionView(
        session_id=session.session_id,
        participants=session.participants,
        created_at=wire.wire_time(session.created_at),
        subject=envelope.wrap_remote_text(source=source, label="subject", text=session.subject),
    )


def view_outgoing(request: wire.OutgoingRequest) -> OutgoingRequestView:
    """Our own request: no remote text in it, so nothing to wrap."""
    return OutgoingRequestView(
        request_id=request.request_id,
        target_agent_name=request.target_agent_name,
        verification_code=request.verification_code,
        expires_at=wire.wire_time(request.expires_at),
    )


def view_connection(connection: wire.Connection) -> ConnectionView:
    return ConnectionView(
        peer_agent_name=connection.peer_agent_name,
        connected_at=wire.wire_time(connection.connected_at),
    )
