"""Reply handles: the only way a run started by a peer's message can send anything.

Every injected message carries a `reply_token` minted by the receiving bridge.
It names one peer and one conversation, and `mailbox_reply` sends there and
nowhere else: a fooled model cannot pick another recipient or conversation,
because it is never asked for one.

A handle is `mbxr_` and base64url of::

    version (1) | issued, unix seconds (4) | epoch (4) | peer | conversation | MAC (16)

The MAC (HMAC-SHA256, truncated to 128 bits) covers our own agent id and every
field, under a key derived from the agent's secret in the state dir: without
that dir a handle can be neither forged nor altered, and one minted by another
agent's bridge fails here. The epoch is the peer's count of revokes (kept in
the ledger), so a revoke voids every handle minted before it. Handles expire
after `TTL_SECONDS`.

Handle-shaped text in a peer's message is replaced before injection
(`scrub`), and outgoing text may not carry one (the secret scan), so a handle
never travels from one peer to another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from mailbox_mcp.errors import BridgeError

__all__ = [
    "MAX_CHARS",
    "PATTERN",
    "PREFIX",
    "TTL_SECONDS",
    "Handle",
    "HandleRefused",
    "mint",
    "scrub",
    "verify",
]

PREFIX = "mbxr_"
MAX_CHARS = 200
TTL_SECONDS = 7 * 24 * 3600
# A handle dated this far in the future is not ours (clocks of one machine agree).
_FUTURE_SLACK_SECONDS = 300
_VERSION = 1
_MAC_BYTES = 16
_HEADER = struct.Struct(">BII")
_UUID = 0
_TEXT = 1
_MAC_LABEL = b"reply-handle/v1\0"
_SHAPE = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{20,{MAX_CHARS}}}", re.ASCII)

# What `scrub` replaces: the prefix in any case, also with invisible characters
# slipped in, then the body's alphabet. Wider than what `verify` accepts, on purpose.
_INVISIBLE = (
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]*"
)
_SCRUB = re.compile(
    _INVISIBLE.join(re.escape(c) for c in PREFIX) + _INVISIBLE + r"[A-Za-z0-9_-]{8,}",
    re.IGNORECASE,
)
REMOVED = "[reply handle removed]"
# Outgoing text with this in it is refused (the secret scan): a handle in any case.
PATTERN = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{20,}", re.IGNORECASE)


class HandleRefused(BridgeError):
    """A reply_token that does not let this agent send: nothing is sent.

    `reason` is one of malformed, forged (altered, or minted by another agent),
    expired, revoked.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Handle:
    peer: str
    session_id: str
    epoch: int
    issued_at: int


def mint(
    key: bytes, agent_id: str, peer: str, session_id: str, epoch: int, now: float | None = None
) -> str:
    """A handle for replying to `peer` in `session_id`, valid for `TTL_SECONDS`."""
    issued = int(time.time() if now is None else now)
    body = _HEADER.pack(_VERSION, issued, epoch) + _pack_text(peer) + _pack_session(session_id)
    token = PREFIX + _b64(body + _mac(key, agent_id, body))
    assert len(token) <= MAX_CHARS, "peer names and session ids are bounded"
    return token


def verify(
    token: str,
    *,
    key: bytes,
    agent_id: str,
    epoch_of: Callable[[str], int],
    now: float | None = None,
) -> Handle:
    """The peer and conversation `token` lets us reply to, or HandleRefused."""
    token = token.strip()
    if not _SHAPE.fullmatch(token):
        raise HandleRefused(
            "malformed", "this is not a reply_token: copy the one from the message you answer"
        )
    encoded = token[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise HandleRefused("malformed", "this reply_token is damaged") from None
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(body) < _HEADER.size or not hmac.compare_digest(mac, _mac(key, agent_id, body)):
        raise HandleRefused(
            "forged",
            "this reply_token was altered or was not given to this agent: copy it exactly "
            "from the message you answer",
        )
    version, issued, epoch = _HEADER.unpack_from(body)
    peer, offset = _unpack_text(body, _HEADER.size)
    session_id = _unpack_session(body, offset)
    if version != _VERSION:
        raise HandleRefused("malformed", "this reply_token is from another version")
    clock = time.time() if now is None else now
    if clock - issued > TTL_SECONDS or issued - clock > _FUTURE_SLACK_SECONDS:
        raise HandleRefused(
            "expired",
            f"this reply_token expired ({TTL_SECONDS // 86400} days): the owner can answer "
            "from their own session",
        )
    if epoch != epoch_of(peer):
        raise HandleRefused(
            "revoked",
            f"the connection with {peer} was revoked since this reply_token was given: "
            "it no longer works",
        )
    return Handle(peer=peer, session_id=session_id, epoch=epoch, issued_at=issued)


def scrub(text: str) -> str:
    """`text` with everything shaped like a reply handle replaced."""
    if "b" not in text and "B" not in text:  # every handle prefix holds a b
        return text
    return _SCRUB.sub(REMOVED, text)


def _mac(key: bytes, agent_id: str, body: bytes) -> bytes:
    message = _MAC_LABEL + agent_id.encode() + b"\0" + body
    return hmac.new(key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _pack_text(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError("too long for a reply handle")
    return bytes([len(data)]) + data


def _pack_session(session_id: str) -> bytes:
    # Server session ids are UUIDs: 16 bytes instead of 36 keep handles short.
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == session_id:
        return bytes([_UUID]) + parsed.bytes
    return bytes([_TEXT]) + _pack_text(session_id)


def _unpack_text(body: bytes, offset: int) -> tuple[str, int]:
    length = body[offset]
    end = offset + 1 + length
    return body[offset + 1 : end].decode(), end


def _unpack_session(body: bytes, offset: int) -> str:
    kind = body[offset]
    if kind == _UUID:
        return str(uuid.UUID(bytes=body[offset + 1 : offset + 17]))
    return _unpack_text(body, offset + 1)[0]
