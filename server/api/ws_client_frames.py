"""What a WebSocket client may send, read defensively: any text, of any shape.

A frame is at most `MAILBOX_MAX_WS_FRAME_BYTES`, but that is room for 60,000
nested brackets, which the JSON parser cannot descend (RecursionError), and for
integers no database column holds. Every parse here answers a value or a
reason, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mailbox_wire import MAX_SEQ

MAX_API_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class AuthFrame:
    api_key: str
    since: int | None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Why a frame was refused, in words for the client (fits a close reason)."""

    reason: str


def load_json(raw: str) -> Any | BadFrame:
    try:
        return json.loads(raw)
    except RecursionError:
        return BadFrame("frames must be JSON objects (that one nests too deep)")
    except ValueError:
        return BadFrame("frames must be JSON objects")


def parse_auth(raw: str | None) -> AuthFrame | BadFrame:
    if raw is None:
        return BadFrame('first frame must be JSON text {"type":"auth","api_key":...}')
    frame = load_json(raw)
    if isinstance(frame, BadFrame) or not isinstance(frame, dict) or frame.get("type") != "auth":
        return BadFrame('first frame must be {"type":"auth","api_key":...}')
    api_key, since = frame.get("api_key"), frame.get("since")
    if not isinstance(api_key, str) or len(api_key) > MAX_API_KEY_CHARS:
        return BadFrame("api_key must be a string")
    if since is not None and not is_seq(since):
        # (A number past the database's range used to fail the backlog query and
        # leave the socket open and silent.)
        return BadFrame(f"since must be an integer from 0 to {MAX_SEQ}")
    return AuthFrame(api_key, since)


def is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ
