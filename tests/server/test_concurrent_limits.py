"""Limits hold under real concurrency: many requests in flight at once against the real server.

Each limit is checked and taken in one step before the request's first await, so
requests that arrive together cannot all pass a check that none of them has
recorded yet (issue 13: 150 concurrent registrations were all created against a
limit of 20, and 60 concurrent wrong codes came before any 429).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.helpers import assert_error, register, unique_name
from tests.servers import ServerThread, server_settings

IN_FLIGHT = 60


async def _all_at_once(
    url: str, requests: list[tuple[str, dict[str, Any], dict[str, str]]]
) -> list:
    """POST every request at the same time, each on its own connection."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        return await asyncio.gather(
            *(http.post(path, json=body, headers=headers) for path, body, headers in requests)
        )


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def test_concurrent_registrations_from_one_address_stop_at_the_limit(
    fresh_database_url: str,
) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=5)
    with ServerThread(settings) as limited:
        responses = asyncio.run(
            _all_at_once(
                limited.url,
                [("/agents/register", {"name": unique_name()}, {}) for _ in range(IN_FLIGHT)],
            )
        )
    assert _statuses(responses) == {201: 5, 429: IN_FLIGHT - 5}, _statuses(responses)
    for refused in (r for r in responses if r.status_code == 429):
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1


def test_concurrent_registrations_refused_for_a_taken_name_give_their_slot_back(
    fresh_database_url: str,
) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=3)
    with ServerThread(settings) as limited:
        taken = unique_name()
        # All want one name: one gets it, the others are told it is taken, and each of
        # those gives its reserved slot back (a refused registration is not counted).
        responses = asyncio.run(
            _all_at_once(limited.url, [("/agents/register", {"name": taken}, {})] * 10)
        )
        counts = _statuses(responses)
        assert counts[201] == 1, counts
        assert counts[201] + counts[409] + counts[429] == 10, counts
        with httpx.Client(base_url=limited.url, timeout=10) as http:
            for _ in range(2):
                ok = http.post("/agents/register", json={"name": unique_name()})
                assert ok.status_code == 201, ok.text
            assert_error(
                http.post("/agents/register", json={"name": unique_name()}), 429, "rate_limited"
            )


def test_concurrent_wrong_codes_stop_at_the_failure_limit(server: ServerThread) -> None:
    requester, target = register(server.url, "req"), register(server.url, "tgt")
    created = requester.post("/connections/request", {"target_agent_name": target.name})
    assert created.status_code == 201, created.text
    code = created.json()["verification_code"]
    wrong = [f"ZZ-{i:03d}" for i in range(IN_FLIGHT) if f"ZZ-{i:03d}" != code]
    responses = asyncio.run(
        _all_at_once(
            server.url,
            [("/connections/approve", {"verification_code": c}, target.auth) for c in wrong],
        )
    )
    # MAILBOX_APPROVE_FAILURES_PER_HOUR is 10 (the default): ten guesses are checked,
    # every other one is refused before it reaches the database.
    assert _statuses(responses) == {404: 10, 429: len(wrong) - 10}, _statuses(responses)
    assert_error(
        target.post("/connections/approve", {"verification_code": code}), 429, "rate_limited"
    )
