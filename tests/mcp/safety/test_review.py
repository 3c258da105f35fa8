"""Held items: each decided once, by the owner, within seven days."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbox_mcp.safety import review
from mailbox_mcp.safety.ledger import Ledger
from mailbox_mcp.safety.owner_cli import visible
from mailbox_mcp.safety.review import ReviewError


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path)
    yield opened
    opened.close()


def hold(ledger: Ledger, content: str = "hello") -> review.HeldItem:
    return review.hold_outgoing(
        ledger, peer="alice", session_id="s1", content=content, encrypt=False, reason="budget"
    )


def test_a_held_item_waits_until_claimed_and_is_claimed_once(ledger: Ledger) -> None:
    item = hold(ledger)
    assert [i.held_id for i in review.waiting(ledger)] == [item.held_id]
    assert review.claim(ledger, item.held_id).content == "hello"
    with pytest.raises(ReviewError, match="approving already"):
        review.claim(ledger, item.held_id)
    review.finish(ledger, item.held_id, {"message_id": "m1"})
    with pytest.raises(review.AlreadyApproved, match="approved already"):
        review.claim(ledger, item.held_id)
    assert review.waiting(ledger) == [] and review.count_waiting(ledger) == 0


def test_a_failed_approval_puts_the_item_back(ledger: Ledger) -> None:
    item = hold(ledger)
    review.claim(ledger, item.held_id)
    review.release_claim(ledger, item.held_id)
    assert review.claim(ledger, item.held_id).held_id == item.held_id


def test_a_rejected_item_cannot_be_approved(ledger: Ledger) -> None:
    item = hold(ledger)
    review.reject(ledger, item.held_id)
    with pytest.raises(ReviewError, match="rejected"):
        review.claim(ledger, item.held_id)
    with pytest.raises(ReviewError, match="no held item"):
        review.reject(ledger, "h-doesnotexist")


def test_items_expire_after_seven_days(ledger: Ledger) -> None:
    item = hold(ledger)
    assert review.expire(ledger, now=time.time() + review.EXPIRE_SECONDS - 60) == []
    expired = review.expire(ledger, now=time.time() + review.EXPIRE_SECONDS + 1)
    assert [i.held_id for i in expired] == [item.held_id]
    assert review.waiting(ledger) == []
    with pytest.raises(ReviewError, match="expired"):
        review.claim(ledger, item.held_id)


def test_holding_the_same_incoming_message_twice_keeps_one_item(ledger: Ledger) -> None:
    readable = {"from_agent": "alice", "session_id": "s1", "content": "hi", "subject": None}
    first = review.hold_incoming(ledger, message_id="m1", readable=readable, reason="deny")
    again = review.hold_incoming(ledger, message_id="m1", readable=readable, reason="deny")
    assert first.held_id == again.held_id and len(review.waiting(ledger)) == 1
    assert first.direction == "incoming" and first.readable == readable


def test_two_processes_approving_at_once_claim_one_item_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    items = [hold(ledger, f"reply {i}").held_id for i in range(20)]
    ledger.close()
    code = (
        "import sys; from pathlib import Path; from mailbox_mcp.safety import review; "
        "from mailbox_mcp.safety.ledger import Ledger; ledger = Ledger(Path(sys.argv[1])); "
        "won = []\n"
        "for held_id in sys.argv[2:]:\n"
        "    try: won.append(review.claim(ledger, held_id).held_id)\n"
        "    except review.ReviewError: pass\n"
        "print(' '.join(won))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), *items], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    claimed = [p.communicate(timeout=60)[0].split() for p in processes]
    assert sorted(held for won in claimed for held in won) == sorted(items)


def test_control_and_bidi_characters_are_made_visible() -> None:
    text = "pay \u202eevil\u202c now\u200b\x07\nline two\u2028"
    assert visible(text) == "pay <U+202E>evil<U+202C> now<U+200B><U+0007>\nline two<U+2028>"
