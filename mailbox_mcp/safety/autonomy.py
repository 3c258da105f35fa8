"""Autonomy per peer: how many replies go out without the owner, counted for the whole agent.

    notify-only   every reply is held for the owner
    bounded       the default: at most 3 replies per conversation and 20 per peer in any
                  24 hours go out on their own; past that, held
    extended      the owner's own numbers (default 20 and 200)

Only the owner changes a level, from the command line (`mailbox-mcp autonomy`);
no tool can. A reply counts when it goes out on its own; one the owner
approves does not. The check and the count are one transaction in the
ledger, so sibling bridge processes cannot spend the same budget twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mailbox_mcp.errors import BridgeError
from mailbox_mcp.safety.ledger import Ledger

NOTIFY_ONLY = "notify-only"
BOUNDED = "bounded"
EXTENDED = "extended"
LEVELS = (NOTIFY_ONLY, BOUNDED, EXTENDED)
DEFAULT_LEVEL = BOUNDED
BOUNDED_LIMITS = (3, 20)
EXTENDED_DEFAULTS = (20, 200)
DAY_SECONDS = 24 * 3600
_MAX_LIMIT = 100_000


class AutonomyError(BridgeError):
    """A level or number the owner gave that cannot be used."""


@dataclass(frozen=True)
class Autonomy:
    level: str
    per_conversation: int
    per_day: int

    def describe(self) -> str:
        if self.level == NOTIFY_ONLY:
            return "notify-only: every reply waits for the owner"
        return (
            f"{self.level}: {self.per_conversation} per conversation, "
            f"{self.per_day} per 24 hours on their own"
        )


@dataclass(frozen=True)
class Decision:
    """Whether a reply goes out now; if it does, `reservation` is its place in the count."""

    send: bool
    reason: str
    autonomy: Autonomy
    used_in_conversation: int
    used_today: int
    reservation: int | None = None


@dataclass(frozen=True)
class Usage:
    autonomy: Autonomy
    replies_today: int


def of(ledger: Ledger, peer: str) -> Autonomy:
    rows = ledger.query(
        "SELECT level, per_conversation, per_day FROM peers WHERE peer = ?", (peer,)
    )
    if not rows:
        return _autonomy(None, None, None)
    return _autonomy(rows[0]["level"], rows[0]["per_conversation"], rows[0]["per_day"])


def _autonomy(level: str | None, per_conversation: int | None, per_day: int | None) -> Autonomy:
    if level == EXTENDED:
        return Autonomy(
            EXTENDED,
            EXTENDED_DEFAULTS[0] if per_conversation is None else per_conversation,
            EXTENDED_DEFAULTS[1] if per_day is None else per_day,
        )
    if level == NOTIFY_ONLY:
        return Autonomy(NOTIFY_ONLY, 0, 0)
    return Autonomy(BOUNDED, *BOUNDED_LIMITS)


def set_level(
    ledger: Ledger,
    peer: str,
    level: str,
    *,
    per_conversation: int | None = None,
    per_day: int | None = None,
) -> Autonomy:
    """The owner's choice for `peer`. Numbers are the owner's own, so only `extended` takes them."""
    if level not in LEVELS:
        raise AutonomyError(f"the level must be one of {', '.join(LEVELS)}, not {level!r}")
    numbers = (per_conversation, per_day)
    if level != EXTENDED and any(n is not None for n in numbers):
        raise AutonomyError(
            f"{level} has fixed numbers; --per-conversation and --per-day go with extended"
        )
    for number in numbers:
        if number is not None and not 0 <= number <= _MAX_LIMIT:
            raise AutonomyError(f"limits are whole numbers from 0 to {_MAX_LIMIT}")
    with ledger.transaction() as db:
        db.execute(
            "INSERT INTO peers (peer, level, per_conversation, per_day, changed_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET level = excluded.level, "
            "per_conversation = excluded.per_conversation, per_day = excluded.per_day, "
            "changed_at = excluded.changed_at",
            (peer, level, per_conversation, per_day, time.time()),
        )
    return _autonomy(level, per_conversation, per_day)


def take(ledger: Ledger, peer: str, session_id: str, now: float | None = None) -> Decision:
    """Decide a reply to `peer` in `session_id`, and count it if it goes out."""
    clock = time.time() if now is None else now
    with ledger.transaction() as db:
        row = db.execute(
            "SELECT level, per_conversation, per_day FROM peers WHERE peer = ?", (peer,)
        ).fetchone()
        autonomy = _autonomy(*(tuple(row) if row else (None, None, None)))
        in_conversation = db.execute(
            "SELECT COUNT(*) FROM replies WHERE peer = ? AND session_id = ?", (peer, session_id)
        ).fetchone()[0]
        today = db.execute(
            "SELECT COUNT(*) FROM replies WHERE peer = ? AND at > ?", (peer, clock - DAY_SECONDS)
        ).fetchone()[0]
        if autonomy.level == NOTIFY_ONLY:
            reason = f"the owner reviews every reply to {peer} (notify-only)"
        elif in_conversation >= autonomy.per_conversation:
            reason = (
                f"{in_conversation} replies already went out on their own in this conversation "
                f"({autonomy.level}: {autonomy.per_conversation} per conversation)"
            )
        elif today >= autonomy.per_day:
            reason = (
                f"{today} replies to {peer} already went out on their own in the last 24 hours "
                f"({autonomy.level}: {autonomy.per_day} per 24 hours)"
            )
        else:
            cursor = db.execute(
                "INSERT INTO replies (peer, session_id, at) VALUES (?, ?, ?)",
                (peer, session_id, clock),
            )
            return Decision(
                True, "within budget", autonomy, in_conversation, today, cursor.lastrowid
            )
    return Decision(False, reason, autonomy, in_conversation, today)


def release(ledger: Ledger, reservation: int) -> None:
    """Give a counted reply back: it did not go out after all (the send failed)."""
    with ledger.transaction() as db:
        db.execute("DELETE FROM replies WHERE id = ?", (reservation,))


def usage(ledger: Ledger, peer: str, now: float | None = None) -> Usage:
    clock = time.time() if now is None else now
    [row] = ledger.query(
        "SELECT COUNT(*) AS n FROM replies WHERE peer = ? AND at > ?", (peer, clock - DAY_SECONDS)
    )
    return Usage(of(ledger, peer), int(row["n"]))


def known_peers(ledger: Ledger) -> list[str]:
    return [row["peer"] for row in ledger.query("SELECT peer FROM peers ORDER BY peer")]
