"""An incoming message as the agent may read it: decrypted, checked, handles removed.

`read` turns the server's message into a `Readable`: an end-to-end encrypted
one is decrypted and its signature checked first (`e2e.py`), and text shaped
like a reply handle is replaced in the content and the subject, so a handle
can never travel from one peer to another through us. `Readable.wrap` puts it
in the untrusted-message envelope. A held message is stored as a `Readable`,
so the owner's later approval injects exactly what the guard saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import mailbox_wire as wire
from mailbox_mcp.e2e.seal import EndToEnd, undecryptable
from mailbox_mcp.inbound import envelope
from mailbox_mcp.safety import handles
from mailbox_mcp.settings import BridgeSettings

__all__ = ["Readable", "read", "render"]


@dataclass(frozen=True)
class Readable:
    from_agent: str
    session_id: str
    subject: str | None
    content: str
    trust_level: str
    notice: str | None = None
    signature: str | None = None

    def wrap(self, *, reply_token: str | None = None, nonce: str | None = None) -> str:
        """The envelope; with `reply_token`, its reply line is `mailbox_reply` (section 9)."""
        return envelope.wrap_incoming_message(
            from_agent=self.from_agent,
            subject=self.subject,
            content=self.content,
            session_id=self.session_id,
            trust_level=self.trust_level,
            notice=self.notice,
            signature=self.signature,
            reply_token=reply_token,
            nonce=nonce,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Readable:
        return cls(**data)


async def read(
    message: wire.Message,
    settings: BridgeSettings,
    e2e: EndToEnd | None,
    *,
    me: str | None = None,
) -> Readable:
    """`message` as the agent may read it. Never raises for an unreadable encrypted body.

    `me` is our agent name, if known: our own sent messages (in a history) are
    encrypted for the recipient only and say so.
    """
    peer = message.from_agent
    content = message.content
    trust_level = settings.trust_level(peer)
    notice = signature = None
    if message.encrypted:
        if e2e is None:  # built without encryption support
            opened = undecryptable(content, "COULD NOT DECRYPT: no OpenPGP support here")
        else:
            opened = await e2e.open(message, me=me)
        content, notice, signature = opened.content, opened.notice, opened.signature
        if not opened.signature_valid:
            trust_level = "UNKNOWN"  # only a valid signature may back the owner's trust
    subject = message.subject
    return Readable(
        from_agent=peer,
        session_id=message.session_id,
        subject=handles.scrub(subject) if subject else subject,
        content=handles.scrub(content),
        trust_level=trust_level,
        notice=notice,
        signature=signature,
    )


async def render(
    message: wire.Message,
    settings: BridgeSettings,
    e2e: EndToEnd | None,
    *,
    me: str | None = None,
) -> str:
    """`message` in the envelope with the owner's reply line (`mailbox_send`)."""
    return (await read(message, settings, e2e, me=me)).wrap()
