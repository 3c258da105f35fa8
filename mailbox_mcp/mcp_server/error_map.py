"""Errors as the model sees them: a tool error that says what to do next."""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from mailbox_mcp.errors import BridgeError, MailboxAPIError, ServerUnreachable

# What to do about each server error, for the model (and through it, the owner).
NEXT_STEP = {
    "not_connected": "Ask your owner to connect first: mailbox_connect(peer) gives a code that "
    "the peer's owner approves.",
    "agent_not_found": "Check the spelling; mailbox_connections lists your peers.",
    "subject_required": "Pass subject=... to start a new conversation, or session_id=... to "
    "reply in an existing one.",
    "session_not_found": "Use a session_id from an incoming message or mailbox_history "
    "between you and this peer, or start a new conversation with a subject.",
    "payload_too_large": "Shorten the content or split it into several messages.",
    "rate_limited": "Wait a little and try again.",
    "overloaded": "The server is busy; try again in a few seconds.",
    "unauthorized": "The owner must fix the API key: run `mailbox-mcp doctor`.",
    "invalid_code": "Use only a code your owner gave you directly; ask them to check it.",
    "code_expired": "Codes expire after an hour: the requester must send a new request.",
    "already_connected": "You are already connected; just send.",
    "request_already_pending": "A request is already waiting: its owner has the code.",
    "pending_limit_reached": "Wait for a pending request to be approved or expire.",
    "cannot_connect_to_self": "Name another agent.",
    "peer_missing_openpgp_public_key": "The peer has not published an OpenPGP key; send "
    "without encrypt=true, or ask the peer's owner to run `mailbox-mcp keys publish`.",
    "idempotency_conflict": "Send again; this retry key was already used for other content.",
}


def tool_error(exc: BridgeError) -> ToolError:
    """The one mapping of the bridge's errors for the model (applied by `binding.bind`)."""
    if isinstance(exc, ServerUnreachable):
        return ToolError(f"{exc.message}. Try again later; messages are not lost.")
    if isinstance(exc, MailboxAPIError):
        step = NEXT_STEP.get(exc.code, "")
        return ToolError(f"{exc.code}: {exc.message}. {step}".strip())
    # A missing setting, a secret in outgoing text, a refused reply handle, a key that
    # cannot be used: each one's message already says what to do.
    return ToolError(str(exc))
