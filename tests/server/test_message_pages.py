"""Pages of messages are bounded by bytes as well as by count (MAILBOX_MAX_PAGE_BYTES).

Issue 13: `GET /inbox?limit=500` answered 129 MB in one page. Paging keeps the
contract's shape: a page may be shorter than `limit`, and the client goes on
(`since=next_since`, `before=<oldest id>`) until a page is empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Agent, connect_agents, register
from tests.servers import ServerThread, server_settings

KIB = 1024
PAGE_BYTES = 64 * KIB
# What the inbox answer adds around its messages (keys, next_since, no requests here).
ENVELOPE_BYTES = 256
BIG = 20 * KIB
COUNT = 12


@pytest.fixture
def paged(fresh_database_url: str) -> Iterator[ServerThread]:
    settings = server_settings(fresh_database_url, MAILBOX_MAX_PAGE_BYTES=PAGE_BYTES)
    with ServerThread(settings) as running:
        yield running


def _pair(server: ServerThread) -> tuple[Agent, Agent]:
    a, b = register(server.url, "big"), register(server.url, "big")
    connect_agents(a, b)
    return a, b


def _send_many(a: Agent, b: Agent, contents: list[str]) -> list[dict[str, Any]]:
    first = a.send(b, contents[0])
    sent = [first]
    for content in contents[1:]:
        sent.append(a.send(b, content, session_id=first["session_id"]))
    return sent


def _contents(size: int, count: int = COUNT) -> list[str]:
    return [f"{i:04d}" + "x" * (size - 4) for i in range(count)]


def test_a_page_of_large_messages_stops_at_the_byte_budget(paged: ServerThread) -> None:
    a, b = _pair(paged)
    _send_many(a, b, _contents(BIG))
    response = b.get("/inbox", params={"limit": 500, "since": 0})
    assert response.status_code == 200, response.text[:300]
    page = response.json()["messages"]
    assert 1 <= len(page) < COUNT
    assert len(response.content) <= PAGE_BYTES + ENVELOPE_BYTES
    assert response.json()["next_since"] == page[-1]["seq"]


def test_paging_with_since_reaches_every_message_once_in_order(paged: ServerThread) -> None:
    a, b = _pair(paged)
    contents = _contents(BIG)
    _send_many(a, b, contents)
    seen: list[str] = []
    since = 0
    for _ in range(COUNT + 1):
        body = b.get("/inbox", params={"limit": 500, "since": since}).json()
        if not body["messages"]:
            break
        seen.extend(m["content"] for m in body["messages"])
        since = body["next_since"]
    assert seen == contents


def test_reading_and_acknowledging_the_default_inbox_reaches_every_message(
    paged: ServerThread,
) -> None:
    a, b = _pair(paged)
    contents = _contents(BIG)
    _send_many(a, b, contents)
    seen: list[str] = []
    for _ in range(COUNT + 1):
        body = b.get("/inbox", params={"limit": 500}).json()
        if not body["messages"]:
            break
        seen.extend(m["content"] for m in body["messages"])
        assert b.post("/inbox/ack", {"up_to_seq": body["next_since"]}).status_code == 200
    assert seen == contents


def test_a_message_larger_than_the_budget_still_comes_one_per_page(
    fresh_database_url: str,
) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_MAX_PAGE_BYTES=16 * KIB)
    with ServerThread(settings) as small:
        a, b = _pair(small)
        contents = _contents(BIG, count=3)
        _send_many(a, b, contents)
        pages = []
        since = 0
        for _ in range(5):
            body = b.get("/inbox", params={"since": since}).json()
            if not body["messages"]:
                break
            pages.append([m["content"] for m in body["messages"]])
            since = body["next_since"]
    assert pages == [[c] for c in contents]


def test_content_that_grows_when_escaped_is_measured_as_sent(paged: ServerThread) -> None:
    # Control characters take six bytes each as JSON: 10,000 of them are about 60 KB
    # on the wire, though stored they are about 13 KB.
    a, b = _pair(paged)
    _send_many(a, b, ["\x01" * 10_000] * 5)
    response = b.get("/inbox", params={"since": 0, "limit": 500})
    assert response.status_code == 200
    assert len(response.json()["messages"]) == 1
    assert len(response.content) <= PAGE_BYTES + ENVELOPE_BYTES


def test_history_pages_by_bytes_and_before_reaches_every_message(paged: ServerThread) -> None:
    a, b = _pair(paged)
    contents = _contents(BIG)
    session_id = _send_many(a, b, contents)[0]["session_id"]
    first = a.get(f"/sessions/{session_id}/history", params={"limit": 500})
    assert first.status_code == 200
    assert 1 <= len(first.json()["messages"]) < COUNT
    assert len(first.content) <= PAGE_BYTES + ENVELOPE_BYTES
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 500}
    for _ in range(COUNT + 1):
        page = a.get(f"/sessions/{session_id}/history", params=params).json()["messages"]
        if not page:
            break
        # Each page is oldest first; older pages come before it.
        seen = [m["content"] for m in page] + seen
        params["before"] = page[0]["message_id"]
    assert seen == contents


def test_small_messages_still_fill_a_page_up_to_its_limit(paged: ServerThread) -> None:
    a, b = _pair(paged)
    _send_many(a, b, [f"small {i}" for i in range(30)])
    assert len(b.get("/inbox", params={"since": 0, "limit": 25}).json()["messages"]) == 25
