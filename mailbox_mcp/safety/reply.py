"""`mailbox_reply`: the one thing a run started by a peer's message can do.

In order, and each failure leaves nothing sent:

1. the reply handle: ours, unaltered, unexpired, not revoked (handles.py) — it
   alone names the peer and the conversation;
2. the secret scan of the text, before any encryption (secret_scan.py);
3. the peer's budget (autonomy.py): within it the reply goes out now and is
   counted; past it, or under notify-only, it is held for the owner, which is
   an answer, not an error.

Every outcome is an audit event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from mailbox_mcp.errors import BridgeError
from mailbox_mcp.safety import autonomy, review
from mailbox_mcp.safety.handles import HandleRefused

if TYPE_CHECKING:
    from mailbox_mcp.bridge import Bridge


class ReplyRefused(BridgeError):
    """Nothing was sent or held; the message says why and what to do."""


class ReplyResult(BaseModel):
    status: Literal["sent", "held"]
    peer: str = Field(description="The agent the reply is for")
    session_id: str
    message_id: str | None = None
    seq: int | None = None
    held_id: str | None = Field(default=None, description="The owner's reference for a held reply")
    encrypted: bool
    note: str


async def reply(bridge: Bridge, reply_token: str, content: str, encrypt: bool) -> ReplyResult:
    """Send (or hold) `content` to the peer and conversation `reply_token` names.

    Raises ReplyRefused, SecretFound, MailboxAPIError or a crypto error; with any
    of them nothing was sent.
    """
    safety = bridge.safety
    bridge.require_key()
    me = await bridge.identify()
    try:
        handle = safety.verify(reply_token, me.agent_id)
    except HandleRefused as exc:
        safety.audit.record("handle_refused", reason=exc.reason, text=content)
        raise ReplyRefused(f"{exc} Nothing was sent.") from None
    peer, session_id = handle.peer, handle.session_id
    safety.check_outgoing(content, peer=peer, session_id=session_id)
    if bridge.settings.require_encryption and not encrypt:
        raise ReplyRefused(
            "MAILBOX_REQUIRE_ENCRYPTION is on: nothing is sent in plaintext. "
            "Call again with encrypt=true."
        )
    decision = autonomy.take(safety.ledger, peer, session_id)
    if not decision.send:
        item = review.hold_outgoing(
            safety.ledger,
            peer=peer,
            session_id=session_id,
            content=content,
            encrypt=encrypt,
            reason=decision.reason,
        )
        safety.audit.record(
            "held",
            peer=peer,
            text=content,
            held_id=item.held_id,
            direction=review.OUTGOING,
            session_id=session_id,
            reason=decision.reason,
        )
        return ReplyResult(
            status="held",
            peer=peer,
            session_id=session_id,
            held_id=item.held_id,
            encrypted=encrypt,
            note=(
                f"Held for your owner: {decision.reason}. The owner decides whether it goes "
                "out; this is not an error, do not send it again."
            ),
        )
    assert decision.reservation is not None
    try:
        body = await bridge.e2e.seal(peer, content) if encrypt else content
        sent = await bridge.api.send_once(peer, body, session_id=session_id, encrypted=encrypt)
    except BaseException:
        autonomy.release(safety.ledger, decision.reservation)  # it did not go out
        raise
    safety.audit.record(
        "replied",
        peer=peer,
        text=content,
        message_id=sent.message_id,
        session_id=sent.session_id,
    )
    return ReplyResult(
        status="sent",
        peer=peer,
        session_id=sent.session_id,
        message_id=sent.message_id,
        seq=sent.seq,
        encrypted=encrypt,
        note=f"Sent to {peer}.",
    )
