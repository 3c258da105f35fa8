"""The owner's review: what waits for a decision, outside the peer agent's reach.

Two kinds of item wait here: replies past a peer's budget (`outgoing`) and
incoming messages the inbound guard did not clear (`incoming`). Only the
owner's command line (`mailbox-mcp review`) decides them; no MCP tool can.

An item moves `held` → `approving` → `approved` (or `held` → `rejected`, or
`expired` after `EXPIRE_SECONDS`). `claim` takes an item out of `held` in one
transaction, so of two approvals at once only one goes ahead, and a second
approval later finds nothing to do: an item is sent or injected exactly once.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from mailbox_mcp.errors import BridgeError
from mailbox_mcp.safety.ledger import Ledger

OUTGOING = "outgoing"
INCOMING = "incoming"
EXPIRE_SECONDS = 7 * 24 * 3600
_ID_BYTES = 5


class ReviewError(BridgeError):
    """An item that is not there, or no longer waits."""


class AlreadyApproved(ReviewError):
    """Approving again: the item went out (or in) once, and that is all it ever does."""


@dataclass(frozen=True)
class HeldItem:
    held_id: str
    direction: str
    peer: str
    session_id: str
    created_at: float
    status: str
    reason: str
    content: str
    encrypt: bool
    message_id: str | None
    readable: dict[str, Any] | None
    resolved_at: float | None
    result: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {
            "held_id": self.held_id,
            "peer": self.peer,
            "direction": self.direction,
            "session_id": self.session_id,
            "created_at": self.created_at,
            "status": self.status,
            "reason": self.reason,
            "content": self.content,
            "encrypt": self.encrypt,
            "message_id": self.message_id,
        }


def _item(row: sqlite3.Row) -> HeldItem:
    return HeldItem(
        held_id=row["held_id"],
        direction=row["direction"],
        peer=row["peer"],
        session_id=row["session_id"],
        created_at=row["created_at"],
        status=row["status"],
        reason=row["reason"],
        content=row["content"],
        encrypt=bool(row["encrypt"]),
        message_id=row["message_id"],
        readable=json.loads(row["readable"]) if row["readable"] else None,
        resolved_at=row["resolved_at"],
        result=json.loads(row["result"]) if row["result"] else None,
    )


def hold_outgoing(
    ledger: Ledger, *, peer: str, session_id: str, content: str, encrypt: bool, reason: str
) -> HeldItem:
    return _insert(ledger, OUTGOING, peer, session_id, content, encrypt, reason, None, None)


def hold_incoming(
    ledger: Ledger, *, message_id: str, readable: dict[str, Any], reason: str
) -> HeldItem:
    """Hold an incoming message; holding the same message again returns the first item."""
    rows = ledger.query("SELECT * FROM held WHERE message_id = ?", (message_id,))
    if rows:
        return _item(rows[0])
    return _insert(
        ledger,
        INCOMING,
        readable["from_agent"],
        readable["session_id"],
        readable["content"],
        False,
        reason,
        message_id,
        readable,
    )


def _insert(
    ledger: Ledger,
    direction: str,
    peer: str,
    session_id: str,
    content: str,
    encrypt: bool,
    reason: str,
    message_id: str | None,
    readable: dict[str, Any] | None,
) -> HeldItem:
    held_id = "h-" + secrets.token_hex(_ID_BYTES)
    with ledger.transaction() as db:
        db.execute(
            "INSERT INTO held (held_id, direction, peer, session_id, created_at, status, reason,"
            " content, encrypt, message_id, readable) VALUES (?, ?, ?, ?, ?, 'held', ?, ?, ?, ?, ?)"
            " ON CONFLICT (message_id) DO NOTHING",
            (
                held_id,
                direction,
                peer,
                session_id,
                time.time(),
                reason,
                content,
                int(encrypt),
                message_id,
                json.dumps(readable) if readable is not None else None,
            ),
        )
        if message_id is not None:
            row = db.execute("SELECT * FROM held WHERE message_id = ?", (message_id,)).fetchone()
        else:
            row = db.execute("SELECT * FROM held WHERE held_id = ?", (held_id,)).fetchone()
    return _item(row)


def expire(ledger: Ledger, now: float | None = None) -> list[HeldItem]:
    """Mark items older than 7 days expired; the items that just expired."""
    clock = time.time() if now is None else now
    with ledger.transaction() as db:
        rows = db.execute(
            "SELECT * FROM held WHERE status = 'held' AND created_at <= ?",
            (clock - EXPIRE_SECONDS,),
        ).fetchall()
        db.execute(
            "UPDATE held SET status = 'expired', resolved_at = ? "
            "WHERE status = 'held' AND created_at <= ?",
            (clock, clock - EXPIRE_SECONDS),
        )
    return [_item(row) for row in rows]


def waiting(ledger: Ledger) -> list[HeldItem]:
    """What waits for the owner now, oldest first (call `expire` first)."""
    return [
        _item(row)
        for row in ledger.query("SELECT * FROM held WHERE status = 'held' ORDER BY created_at")
    ]


def count_waiting(ledger: Ledger, now: float | None = None) -> int:
    clock = time.time() if now is None else now
    [row] = ledger.query(
        "SELECT COUNT(*) AS n FROM held WHERE status = 'held' AND created_at > ?",
        (clock - EXPIRE_SECONDS,),
    )
    return int(row["n"])


def get(ledger: Ledger, held_id: str) -> HeldItem:
    rows = ledger.query("SELECT * FROM held WHERE held_id = ?", (held_id,))
    if not rows:
        raise ReviewError(f"no held item {held_id!r}: `mailbox-mcp review` lists them")
    return _item(rows[0])


def claim(ledger: Ledger, held_id: str, now: float | None = None) -> HeldItem:
    """Take a waiting item for approval (only one caller ever gets it)."""
    clock = time.time() if now is None else now
    with ledger.transaction() as db:
        row = db.execute("SELECT * FROM held WHERE held_id = ?", (held_id,)).fetchone()
        if row is None:
            raise ReviewError(f"no held item {held_id!r}: `mailbox-mcp review` lists them")
        item = _item(row)
        if item.status == "held" and item.created_at <= clock - EXPIRE_SECONDS:
            raise ReviewError(f"{held_id} expired (items wait 7 days)")
        if item.status == "approved":
            raise AlreadyApproved(f"{held_id} was approved already: nothing done")
        if item.status != "held":
            raise ReviewError(f"{held_id} is {item.status} already: nothing to do")
        db.execute("UPDATE held SET status = 'approving' WHERE held_id = ?", (held_id,))
    return item


def release_claim(ledger: Ledger, held_id: str) -> None:
    """Put a claimed item back: sending or injecting it failed, the owner may try again."""
    with ledger.transaction() as db:
        db.execute(
            "UPDATE held SET status = 'held' WHERE held_id = ? AND status = 'approving'",
            (held_id,),
        )


def finish(ledger: Ledger, held_id: str, result: dict[str, Any]) -> None:
    with ledger.transaction() as db:
        db.execute(
            "UPDATE held SET status = 'approved', resolved_at = ?, result = ? WHERE held_id = ?",
            (time.time(), json.dumps(result), held_id),
        )


def reject(ledger: Ledger, held_id: str) -> HeldItem:
    with ledger.transaction() as db:
        row = db.execute("SELECT * FROM held WHERE held_id = ?", (held_id,)).fetchone()
        if row is None:
            raise ReviewError(f"no held item {held_id!r}: `mailbox-mcp review` lists them")
        item = _item(row)
        if item.status != "held":
            raise ReviewError(f"{held_id} is {item.status} already: nothing to do")
        db.execute(
            "UPDATE held SET status = 'rejected', resolved_at = ? WHERE held_id = ?",
            (time.time(), held_id),
        )
    return item
