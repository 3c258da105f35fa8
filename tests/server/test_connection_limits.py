"""Connection requests cannot be repeated without end (issue 13): a cool-down after each
rejection, a cap on what waits for a target, and blocks that refuse an agent silently."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from server.clock import as_utc
from server.models import connection_requests
from tests.helpers import Agent, Socket, assert_error, connect_agents, register
from tests.servers import ServerThread, server_settings

HOUR = 3600


def _request(a: Agent, b: Agent) -> httpx.Response:
    return a.post("/connections/request", {"target_agent_name": b.name})


def _created(a: Agent, b: Agent) -> dict[str, Any]:
    response = _request(a, b)
    assert response.status_code == 201, response.text
    return response.json()


def _reject(b: Agent, request_id: str) -> None:
    response = b.post("/connections/reject", {"request_id": request_id})
    assert response.status_code == 200, response.text


def _incoming(agent: Agent) -> list[str]:
    response = agent.get("/connections/pending")
    assert response.status_code == 200, response.text
    return [r["from_agent_name"] for r in response.json()["incoming"]]


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after")
    assert value is not None and value.isdigit(), dict(response.headers)
    return int(value)


def _age_rejections(database_url: str, requester: Agent, by: timedelta) -> None:
    """Move the requester's rejections back in time, directly in the database."""

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                # Read and written back in Python: SQLite cannot subtract from its dates.
                rows = (
                    await conn.execute(
                        select(connection_requests.c.id, connection_requests.c.resolved_at).where(
                            connection_requests.c.requester_id == requester.agent_id,
                            connection_requests.c.status == "rejected",
                        )
                    )
                ).all()
                assert rows
                for row in rows:
                    await conn.execute(
                        update(connection_requests)
                        .where(connection_requests.c.id == row.id)
                        .values(resolved_at=as_utc(row.resolved_at) - by)
                    )
        finally:
            await engine.dispose()

    asyncio.run(run())


# --- the cool-down after a rejection --------------------------------------------------------


def test_a_rejected_requester_must_wait_an_hour_before_asking_again(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    _reject(b, _created(a, b)["request_id"])
    again = _request(a, b)
    assert_error(again, 429, "rate_limited")
    assert HOUR - 60 <= _retry_after(again) <= HOUR
    assert _incoming(b) == []
    # The cool-down is per pair: a may still ask someone else.
    assert _request(a, register(server.url, "tgt")).status_code == 201


def test_the_cool_down_doubles_with_each_further_rejection(
    server: ServerThread, database_url: str
) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    _reject(b, _created(a, b)["request_id"])
    _age_rejections(database_url, a, timedelta(hours=1, minutes=1))
    _reject(b, _created(a, b)["request_id"])
    second = _request(a, b)
    assert_error(second, 429, "rate_limited")
    assert 2 * HOUR - 60 <= _retry_after(second) <= 2 * HOUR
    _age_rejections(database_url, a, timedelta(hours=2, minutes=1))
    _reject(b, _created(a, b)["request_id"])
    third = _request(a, b)
    assert 4 * HOUR - 60 <= _retry_after(third) <= 4 * HOUR


def test_rejections_older_than_thirty_days_are_forgotten(
    server: ServerThread, database_url: str
) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    _reject(b, _created(a, b)["request_id"])
    _age_rejections(database_url, a, timedelta(days=31))
    assert _request(a, b).status_code == 201


def test_a_cancelled_request_has_no_cool_down(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    cancelled = a.post("/connections/reject", {"request_id": _created(a, b)["request_id"]})
    assert cancelled.json()["status"] == "cancelled"
    assert _request(a, b).status_code == 201


# --- the cap on incoming requests -----------------------------------------------------------


@pytest.fixture
def capped(fresh_database_url: str) -> Iterator[ServerThread]:
    settings = server_settings(fresh_database_url, MAILBOX_MAX_INCOMING_PENDING=3)
    with ServerThread(settings) as running:
        yield running


def test_past_the_incoming_cap_new_requests_are_refused(capped: ServerThread) -> None:
    target = register(capped.url, "tgt")
    requesters = [register(capped.url, "req") for _ in range(4)]
    for requester in requesters[:3]:
        _created(requester, target)
    refused = _request(requesters[3], target)
    assert_error(refused, 429, "pending_limit_reached")
    assert 1 <= _retry_after(refused) <= HOUR
    assert sorted(_incoming(target)) == sorted(r.name for r in requesters[:3])
    # A rejection makes room.
    first = target.get("/connections/pending").json()["incoming"][0]["request_id"]
    _reject(target, first)
    assert _request(requesters[3], target).status_code == 201


def test_concurrent_requests_stop_at_the_incoming_cap(capped: ServerThread) -> None:
    target = register(capped.url, "tgt")
    requesters = [register(capped.url, "req") for _ in range(12)]

    async def all_at_once() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requesters), max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=capped.url, timeout=60, limits=limits) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/connections/request",
                        json={"target_agent_name": target.name},
                        headers=r.auth,
                    )
                    for r in requesters
                )
            )

    statuses = Counter(r.status_code for r in asyncio.run(all_at_once()))
    assert statuses == {201: 3, 429: 9}, statuses
    assert len(_incoming(target)) == 3


def test_blocked_requesters_do_not_use_up_the_incoming_cap(capped: ServerThread) -> None:
    target = register(capped.url, "tgt")
    blocked = [register(capped.url, "spam") for _ in range(3)]
    for agent in blocked:
        assert target.post("/connections/blocks", {"agent_name": agent.name}).status_code == 200
        _created(agent, target)
    assert _created(register(capped.url, "req"), target)["status"] == "pending"


# --- blocks ------------------------------------------------------------------------------------


def test_a_blocked_agents_request_looks_accepted_but_reaches_nobody(server: ServerThread) -> None:
    a, b, c = register(server.url, "spam"), register(server.url, "tgt"), register(server.url, "ok")
    blocked = b.post("/connections/blocks", {"agent_name": a.name})
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["agent_name"] == a.name
    with Socket(server.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        silent = _created(a, b)
        _created(c, b)
        # The first request frame b gets is c's: a's was never pushed.
        frame = socket.recv_type("connection_request")
    assert frame["from_agent_name"] == c.name
    assert silent["status"] == "pending"
    # a sees its request as pending, exactly as any other.
    [outgoing] = a.get("/connections/pending").json()["outgoing"]
    assert outgoing["request_id"] == silent["request_id"]
    # b sees only c's, in the pending list and in the inbox.
    assert _incoming(b) == [c.name]
    assert [r["from_agent_name"] for r in b.get("/inbox").json()["connection_requests"]] == [c.name]
    # The code approves nothing, even if it reached b's owner another way.
    approve = b.post("/connections/approve", {"verification_code": silent["verification_code"]})
    assert_error(approve, 404, "invalid_code")


def test_blocking_a_connected_agent_revokes_the_connection(server: ServerThread) -> None:
    a, b = register(server.url, "peer"), register(server.url, "me")
    connect_agents(a, b)
    assert b.post("/connections/blocks", {"agent_name": a.name}).status_code == 200
    refused = a.post("/messages/send", {"to": b.name, "content": "hi", "subject": "s"})
    assert_error(refused, 403, "not_connected")
    assert b.get("/connections").json()["connections"] == []


def test_blocks_are_listed_and_unblocking_shows_waiting_requests_again(
    server: ServerThread,
) -> None:
    a, b = register(server.url, "spam"), register(server.url, "tgt")
    first = b.post("/connections/blocks", {"agent_name": a.name}).json()
    again = b.post("/connections/blocks", {"agent_name": a.name})
    assert again.status_code == 200 and again.json() == first
    listed = b.get("/connections/blocks").json()["blocks"]
    assert listed == [first]
    created = _created(a, b)
    assert _incoming(b) == []
    unblocked = b.delete(f"/connections/blocks/{a.name}")
    assert unblocked.status_code == 200, unblocked.text
    assert unblocked.json() == {"status": "unblocked", "agent_name": a.name}
    assert b.get("/connections/blocks").json()["blocks"] == []
    assert _incoming(b) == [a.name]
    approved = b.post("/connections/approve", {"verification_code": created["verification_code"]})
    assert approved.status_code == 200, approved.text
    assert_error(b.delete(f"/connections/blocks/{a.name}"), 404, "not_found")


def test_blocks_of_one_agent_do_not_affect_another(server: ServerThread) -> None:
    a, b, c = register(server.url, "req"), register(server.url, "tgt"), register(server.url, "tgt")
    assert b.post("/connections/blocks", {"agent_name": a.name}).status_code == 200
    _created(a, c)
    assert _incoming(c) == [a.name]
    assert c.get("/connections/blocks").json()["blocks"] == []


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("<self>", 400, "cannot_block_self"),
        ("no-such-agent-here", 404, "agent_not_found"),
        ("Not A Name", 422, "validation_error"),
    ],
)
def test_blocking_oneself_or_an_unknown_agent_is_refused(
    server: ServerThread, name: str, status: int, code: str
) -> None:
    b = register(server.url, "tgt")
    agent_name = b.name if name == "<self>" else name
    assert_error(b.post("/connections/blocks", {"agent_name": agent_name}), status, code)


def test_block_routes_need_a_key(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert_error(http.get("/connections/blocks"), 401, "unauthorized")
        assert_error(
            http.post("/connections/blocks", json={"agent_name": "x-y"}), 401, "unauthorized"
        )
        assert_error(http.delete("/connections/blocks/x-y"), 401, "unauthorized")
