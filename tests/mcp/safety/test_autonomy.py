"""Autonomy per peer, counted for the whole agent across bridge processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbox_mcp.safety import autonomy
from mailbox_mcp.safety.autonomy import AutonomyError
from mailbox_mcp.safety.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger(tmp_path)
    yield opened  # type: ignore[misc]
    opened.close()


def sends(ledger: Ledger, peer: str, session: str, count: int, now: float = 1000.0) -> list[bool]:
    return [autonomy.take(ledger, peer, session, now=now).send for _ in range(count)]


def test_bounded_is_the_default_three_per_conversation(ledger: Ledger) -> None:
    assert autonomy.of(ledger, "alice").level == "bounded"
    assert sends(ledger, "alice", "s1", 4) == [True, True, True, False]
    decision = autonomy.take(ledger, "alice", "s1", now=1000.0)
    assert not decision.send and "3 per conversation" in decision.reason
    assert sends(ledger, "alice", "s2", 1) == [True]  # a new conversation has its own three
    assert sends(ledger, "bob", "s1", 1) == [True]  # and other peers their own budget


def test_bounded_allows_twenty_per_peer_in_any_24_hours(ledger: Ledger) -> None:
    results = [autonomy.take(ledger, "alice", f"s{i}", now=1000.0).send for i in range(21)]
    assert results == [True] * 20 + [False]
    held = autonomy.take(ledger, "alice", "s-new", now=1000.0)
    assert not held.send and "20 per 24 hours" in held.reason
    # a day later the window has moved on
    assert autonomy.take(ledger, "alice", "s-new", now=1000.0 + 24 * 3600 + 1).send


def test_notify_only_holds_every_reply(ledger: Ledger) -> None:
    autonomy.set_level(ledger, "alice", "notify-only")
    decision = autonomy.take(ledger, "alice", "s1")
    assert not decision.send and "notify-only" in decision.reason


def test_extended_takes_the_owners_numbers_and_defaults_to_20_and_200(ledger: Ledger) -> None:
    chosen = autonomy.set_level(ledger, "alice", "extended")
    assert (chosen.per_conversation, chosen.per_day) == (20, 200)
    autonomy.set_level(ledger, "alice", "extended", per_conversation=5, per_day=6)
    assert sends(ledger, "alice", "s1", 6) == [True] * 5 + [False]
    assert sends(ledger, "alice", "s2", 2) == [True, False]


def test_a_released_reply_does_not_count(ledger: Ledger) -> None:
    first = autonomy.take(ledger, "alice", "s1")
    assert first.reservation is not None
    autonomy.release(ledger, first.reservation)
    assert sends(ledger, "alice", "s1", 4) == [True, True, True, False]


@pytest.mark.parametrize(
    ("level", "numbers"),
    [("chatty", {}), ("bounded", {"per_day": 5}), ("extended", {"per_day": -1})],
)
def test_levels_and_numbers_that_make_no_sense_are_refused(
    ledger: Ledger, level: str, numbers: dict[str, int]
) -> None:
    with pytest.raises(AutonomyError):
        autonomy.set_level(ledger, "alice", level, **numbers)
    assert autonomy.of(ledger, "alice").level == "bounded"


def test_the_budget_is_counted_across_processes(tmp_path: Path) -> None:
    """Eight processes race for one conversation's budget: three replies go out, no more."""
    code = (
        "import sys; from pathlib import Path; from mailbox_mcp.safety import autonomy; "
        "from mailbox_mcp.safety.ledger import Ledger; "
        "ledger = Ledger(Path(sys.argv[1])); "
        "print(sum(autonomy.take(ledger, 'alice', 's1').send for _ in range(5)))"
    )
    Ledger(tmp_path).close()
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(8)
    ]
    sent = [int(p.communicate(timeout=60)[0]) for p in processes]
    assert sum(sent) == 3


def test_a_revoke_missed_while_nobody_listened_still_bumps_the_epoch(ledger: Ledger) -> None:
    assert ledger.sync_connections({"alice": "t1", "bob": "t1"}) == []
    assert ledger.epoch("alice") == 0
    # alice was revoked and connected again while no bridge listened
    assert ledger.sync_connections({"alice": "t2", "bob": "t1"}) == ["alice"]
    assert ledger.epoch("alice") == 1 and ledger.epoch("bob") == 0
    # bob was revoked and is gone
    assert ledger.sync_connections({"alice": "t2"}) == ["bob"]
    assert ledger.epoch("bob") == 1
    assert ledger.bump_epoch("bob") == 2
