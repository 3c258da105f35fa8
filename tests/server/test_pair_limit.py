"""The pair limit: at most N messages per sender per recipient in any hour (CONTRACT 9)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DataError

from server.ratelimit import ReservingWindow
from server.services import message_store
from server.settings import Settings
from tests.helpers import Agent, assert_error, connect_agents, register
from tests.servers import ServerThread, database_like, server_settings

LIMIT = 3


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "fastapi-route"])
def limited(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    """A server with a pair limit of 3, sends served by the fast path or by FastAPI."""
    directory = tmp_path_factory.mktemp("pair-limit")
    with database_like(database_url, directory) as url:
        settings = server_settings(
            url, MAILBOX_PAIR_MESSAGES_PER_HOUR=LIMIT, MAILBOX_FAST_SEND=request.param
        )
        with ServerThread(settings) as running:
            yield running


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "alice"), register(server.url, "bob")
    connect_agents(a, b)
    return a, b


def _send(a: Agent, b: Agent, content: str = "x", **fields: Any) -> httpx.Response:
    body = {"to": b.name, "content": content, **fields}
    if "session_id" not in fields:
        body.setdefault("subject", "s")
    return a.post("/messages/send", body)


def _assert_refused(response: httpx.Response) -> None:
    assert_error(response, 429, "rate_limited")
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), dict(response.headers)
    assert 1 <= int(retry_after) <= 3600


# --- on a real server, both send paths, both backends --------------------------------


def test_the_fourth_message_to_one_peer_in_an_hour_answers_429_with_retry_after(
    limited: ServerThread,
) -> None:
    a, b = _pair(limited)
    for i in range(LIMIT):
        a.send(b, f"m{i}")
    _assert_refused(_send(a, b, "one too many"))
    # The refused message was not stored.
    contents = [m["content"] for m in b.get("/inbox").json()["messages"]]
    assert contents == [f"m{i}" for i in range(LIMIT)]


def test_another_pair_and_the_opposite_direction_count_apart(limited: ServerThread) -> None:
    a, b = _pair(limited)
    c = register(limited.url, "carol")
    connect_agents(a, c)
    connect_agents(c, b)
    for i in range(LIMIT):
        a.send(b, f"a to b {i}")
    _assert_refused(_send(a, b))
    for i in range(LIMIT):
        b.send(a, f"b to a {i}")
        a.send(c, f"a to c {i}")
        c.send(b, f"c to b {i}")
    _assert_refused(_send(b, a))


def test_an_idempotent_replay_is_not_counted(limited: ServerThread) -> None:
    a, b = _pair(limited)
    first = _send(a, b, "once", idempotency_key="k-1")
    assert first.status_code == 201, first.text
    for _ in range(LIMIT + 1):
        again = _send(a, b, "once", idempotency_key="k-1")
        assert again.status_code == 201 and again.json() == first.json()
    for i in range(LIMIT - 1):
        a.send(b, f"more {i}")
    _assert_refused(_send(a, b, "one too many"))
    # At the limit a replay still answers as the first time.
    assert _send(a, b, "once", idempotency_key="k-1").json() == first.json()


def test_concurrent_retries_with_one_key_use_one_slot(limited: ServerThread) -> None:
    a, b = _pair(limited)

    def retry(_: int) -> httpx.Response:
        return _send(a, b, "race", idempotency_key="race-1")

    with concurrent.futures.ThreadPoolExecutor(LIMIT) as pool:
        answers = list(pool.map(retry, range(LIMIT)))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    for i in range(LIMIT - 1):
        a.send(b, f"more {i}")
    _assert_refused(_send(a, b, "one too many"))


def test_a_failed_send_is_not_counted(limited: ServerThread) -> None:
    a, b = _pair(limited)
    c, d = _pair(limited)
    theirs = c.send(d, "private")
    first = a.send(b, "first", idempotency_key="k-1")
    armored = "-----BEGIN PGP MESSAGE-----\n...\n-----END PGP MESSAGE-----"
    openpgp = {"algorithm": "openpgp", "format": "armored"}
    failures: list[tuple[Callable[[], httpx.Response], int, str]] = [
        (lambda: _send(a, b, session_id=theirs["session_id"]), 404, "session_not_found"),
        (lambda: a.post("/messages/send", {"to": b.name, "content": "x"}), 422, "subject_required"),
        (lambda: _send(a, b, "x" * (64 * 1024 + 1)), 413, "payload_too_large"),
        (lambda: _send(a, b, "changed", idempotency_key="k-1"), 409, "idempotency_conflict"),
        (
            lambda: _send(a, b, armored, encrypted=True, encryption=openpgp),
            409,
            "peer_missing_openpgp_public_key",
        ),
        (lambda: _send(a, c), 403, "not_connected"),
    ]
    for attempt, status, code in failures:
        for _ in range(LIMIT):
            assert_error(attempt(), status, code)
    a.send(b, "second", session_id=first["session_id"])
    a.send(b, "third")
    _assert_refused(_send(a, b, "one too many"))


def test_a_send_the_database_refuses_is_not_counted(
    limited: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot is taken just before the store; a store that fails gives it back."""
    a, b = _pair(limited)

    async def refuse(_db: object, _row: object) -> int:
        raise DataError("refused by the test", None, Exception("refused"))

    # The server runs in this process, so its store can be swapped for this test.
    with monkeypatch.context() as patch:
        patch.setattr(message_store, "store", refuse)
        for _ in range(LIMIT + 1):
            assert_error(_send(a, b), 422, "validation_error")
    for i in range(LIMIT):
        a.send(b, f"m{i}")
    _assert_refused(_send(a, b, "one too many"))


def test_a_revoke_does_not_reset_the_count(limited: ServerThread) -> None:
    a, b = _pair(limited)
    for i in range(LIMIT):
        a.send(b, f"m{i}")
    assert a.delete(f"/connections/{b.name}").status_code == 200
    assert_error(_send(a, b), 403, "not_connected")
    connect_agents(a, b)
    _assert_refused(_send(a, b))


def test_a_limit_of_zero_switches_the_pair_limit_off(server: ServerThread) -> None:
    # The shared test server runs with MAILBOX_PAIR_MESSAGES_PER_HOUR=0 (tests/servers.py).
    assert server.settings.pair_messages_per_hour == 0
    a, b = _pair(server)
    for i in range(3 * LIMIT):
        a.send(b, f"m{i}")
    assert len(b.get("/inbox").json()["messages"]) == 3 * LIMIT


def test_the_default_is_120_messages_per_pair_and_hour() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.pair_messages_per_hour == 120


# --- the window itself -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_refuses_past_its_limit_and_frees_a_slot_an_hour_after_the_oldest() -> None:
    clock = Clock()
    window: ReservingWindow[str] = ReservingWindow(3, 3600, clock=clock)
    for _ in range(3):
        assert window.reserve("k") is not None
        clock.now += 10
    assert window.reserve("k") is None
    assert window.retry_after("k") == pytest.approx(3600 - 30)
    assert window.retry_after("other") == 0
    clock.now = 1000.0 + 3600  # the first slot leaves the window
    assert window.reserve("k") is not None
    assert window.reserve("k") is None


def test_a_released_slot_can_be_taken_again() -> None:
    clock = Clock()
    window: ReservingWindow[str] = ReservingWindow(2, 3600, clock=clock)
    first = window.reserve("k")
    clock.now += 1
    second = window.reserve("k")
    assert first is not None and second is not None
    window.release("k", first)  # not the newest: another reservation came after it
    assert window.retry_after("k") == 0
    assert window.reserve("k") is not None
    assert window.reserve("k") is None
    window.release("gone", 1.0)  # a key never seen: nothing to give back, no error


def test_a_window_keeps_memory_bounded_dropping_idle_keys_first() -> None:
    clock = Clock()
    window: ReservingWindow[int] = ReservingWindow(5, 3600, max_keys=10, clock=clock)
    for key in range(5):
        window.reserve(key)
    clock.now += 3600  # keys 0..4 are idle now
    for key in range(5, 10):
        window.reserve(key)
    window.reserve(10)
    assert len(window) == 6  # the idle ones went, the active ones stayed
    for key in range(11, 100):
        window.reserve(key)
        assert len(window) <= 10
    # The newest keys are still counted.
    for _ in range(4):
        window.reserve(99)
    assert window.reserve(99) is None


def test_forget_idle_drops_keys_without_a_slot_in_the_window() -> None:
    clock = Clock()
    window: ReservingWindow[str] = ReservingWindow(5, 3600, clock=clock)
    slot = window.reserve("released")
    assert slot is not None
    window.release("released", slot)
    window.reserve("old")
    clock.now += 3000
    window.reserve("recent")
    clock.now += 600
    window.forget_idle()
    assert len(window) == 1 and window.retry_after("recent") == 0
