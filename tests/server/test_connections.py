"""Connections: the double opt-in with a short human code, reject, cancel, revoke (CONTRACT 3)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from server.models import connection_requests
from tests.helpers import Agent, Socket, assert_error, connect_agents, register
from tests.servers import ServerThread

CODE = re.compile(r"^[A-Z]{2}-[0-9]{3}$")


def _request(a: Agent, b: Agent, **fields: Any) -> dict[str, Any]:
    response = a.post("/connections/request", {"target_agent_name": b.name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _approve(agent: Agent, code: str) -> httpx.Response:
    return agent.post("/connections/approve", {"verification_code": code})


def _peers(agent: Agent) -> list[str]:
    response = agent.get("/connections")
    assert response.status_code == 200, response.text
    return [c["peer_agent_name"] for c in response.json()["connections"]]


def _can_send(a: Agent, b: Agent) -> httpx.Response:
    return a.post("/messages/send", {"to": b.name, "content": "hi", "subject": "s"})


def _other_code(code: str, i: int) -> str:
    """A well-formed code that is not `code`."""
    candidate = f"ZZ-{i:03d}"
    return candidate if candidate != code else f"YY-{i:03d}"


def _expire(database_url: str, request_id: str) -> None:
    """Move a request's expiry into the past, directly in the database."""

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(
                    update(connection_requests)
                    .where(connection_requests.c.id == request_id)
                    .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
                )
                assert result.rowcount == 1
        finally:
            await engine.dispose()

    asyncio.run(run())


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after")
    assert value is not None and value.isdigit(), dict(response.headers)
    return int(value)


# --- the happy path -------------------------------------------------------------------


def test_a_request_answers_a_short_code_that_expires_in_an_hour(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    before = datetime.now(UTC)
    body = _request(a, b)
    assert set(body) == {
        "request_id",
        "verification_code",
        "target_agent_name",
        "status",
        "expires_at",
    }
    assert CODE.match(body["verification_code"]), body["verification_code"]
    assert body["status"] == "pending"
    assert body["target_agent_name"] == b.name
    expires_at = datetime.fromisoformat(body["expires_at"])
    expected = before + timedelta(hours=1)
    assert expected - timedelta(seconds=30) <= expires_at <= expected + timedelta(seconds=30)


def test_only_the_requester_sees_the_code_in_pending(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    created = _request(a, b, message="hello from a")
    code = created["verification_code"]

    target_view = b.get("/connections/pending")
    assert target_view.status_code == 200, target_view.text
    assert code not in target_view.text
    [incoming] = target_view.json()["incoming"]
    assert "verification_code" not in incoming
    assert incoming["request_id"] == created["request_id"]
    assert incoming["from_agent_name"] == a.name
    assert incoming["message"] == "hello from a"
    assert incoming["status"] == "pending"
    assert target_view.json()["outgoing"] == []

    inbox = b.get("/inbox")
    assert inbox.status_code == 200, inbox.text
    assert code not in inbox.text
    assert [r["request_id"] for r in inbox.json()["connection_requests"]] == [created["request_id"]]

    requester_view = a.get("/connections/pending").json()
    assert requester_view["incoming"] == []
    [outgoing] = requester_view["outgoing"]
    assert outgoing["verification_code"] == code
    assert outgoing["target_agent_name"] == b.name
    assert outgoing["request_id"] == created["request_id"]


def test_the_target_gets_a_connection_request_frame_without_the_code(
    server: ServerThread,
) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    with Socket(server.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        created = _request(a, b, message="please connect")
        frame = socket.recv_type("connection_request", timeout=5)
    assert created["verification_code"] not in json.dumps(frame)
    assert "verification_code" not in frame
    assert frame["request_id"] == created["request_id"]
    assert frame["from_agent_name"] == a.name
    assert frame["message"] == "please connect"


def test_the_target_approves_with_the_code_and_both_are_connected(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    with Socket(server.ws_url) as sa, Socket(server.ws_url) as sb:
        assert sa.auth(a.api_key)["type"] == "auth_ok"
        assert sb.auth(b.api_key)["type"] == "auth_ok"
        created = _request(a, b)
        response = _approve(b, created["verification_code"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "connected"
        assert body["peer_agent_name"] == a.name
        assert datetime.fromisoformat(body["connected_at"]).tzinfo is not None

        frame_a = sa.recv_type("connection_approved", timeout=5)
        frame_b = sb.recv_type("connection_approved", timeout=5)
    assert frame_a["peer_agent_name"] == b.name
    assert frame_b["peer_agent_name"] == a.name
    assert frame_a["request_id"] == frame_b["request_id"] == created["request_id"]

    assert _peers(a) == [b.name]
    assert _peers(b) == [a.name]
    assert a.get("/connections/pending").json() == {"incoming": [], "outgoing": []}
    assert b.get("/connections/pending").json() == {"incoming": [], "outgoing": []}
    assert _can_send(a, b).status_code == 201
    assert _can_send(b, a).status_code == 201


def test_code_matching_ignores_case_and_surrounding_spaces(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    response = _approve(b, f"  {code.lower()}  ")
    assert response.status_code == 200, response.text
    assert response.json()["peer_agent_name"] == a.name


def test_crossed_requests_are_both_settled_by_one_approval(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    from_a = _request(a, b)
    _request(b, a)
    assert _approve(b, from_a["verification_code"]).status_code == 200
    assert a.get("/connections/pending").json() == {"incoming": [], "outgoing": []}
    assert b.get("/connections/pending").json() == {"incoming": [], "outgoing": []}
    assert _peers(a) == [b.name]


# --- who may use a code ------------------------------------------------------------------


def test_requester_cannot_approve_its_own_code(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    assert_error(_approve(a, code), 404, "invalid_code")
    assert _peers(a) == []
    # The code still works for the target.
    assert _approve(b, code).status_code == 200


def test_a_third_agent_cannot_use_someone_elses_code(server: ServerThread) -> None:
    a, b, c = (register(server.url, p) for p in ("req", "tgt", "eve"))
    code = _request(a, b)["verification_code"]
    assert_error(_approve(c, code), 404, "invalid_code")
    assert _peers(c) == []
    assert _peers(a) == []
    assert _approve(b, code).status_code == 200


def test_a_wrong_or_malformed_code_is_invalid_code(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    assert_error(_approve(b, _other_code(code, 1)), 404, "invalid_code")
    assert_error(_approve(b, "not a code"), 404, "invalid_code")
    assert _approve(b, code).status_code == 200


def test_a_used_code_cannot_be_used_again(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    assert _approve(b, code).status_code == 200
    assert_error(_approve(b, code), 404, "invalid_code")


# --- refusals when requesting -------------------------------------------------------------


def test_an_agent_cannot_connect_to_itself(server: ServerThread) -> None:
    a = register(server.url)
    response = a.post("/connections/request", {"target_agent_name": a.name})
    assert_error(response, 400, "cannot_connect_to_self")


def test_a_request_to_an_unknown_agent_is_agent_not_found(server: ServerThread) -> None:
    a = register(server.url)
    response = a.post("/connections/request", {"target_agent_name": "nobody-by-this-name"})
    assert_error(response, 404, "agent_not_found")


def test_a_request_to_a_connected_peer_is_already_connected(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    connect_agents(a, b)
    assert_error(
        a.post("/connections/request", {"target_agent_name": b.name}), 409, "already_connected"
    )
    assert_error(
        b.post("/connections/request", {"target_agent_name": a.name}), 409, "already_connected"
    )


def test_a_second_request_while_one_is_pending_is_refused(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    _request(a, b)
    response = a.post("/connections/request", {"target_agent_name": b.name})
    assert_error(response, 409, "request_already_pending")
    assert len(a.get("/connections/pending").json()["outgoing"]) == 1


def test_a_fourth_outgoing_pending_request_hits_the_pending_limit(server: ServerThread) -> None:
    a = register(server.url, "req")
    targets = [register(server.url, "tgt") for _ in range(4)]
    for target in targets[:3]:
        _request(a, target)
    refused = a.post("/connections/request", {"target_agent_name": targets[3].name})
    assert_error(refused, 429, "pending_limit_reached")
    assert 3000 <= _retry_after(refused) <= 3601
    assert len(a.get("/connections/pending").json()["outgoing"]) == 3
    assert targets[3].get("/connections/pending").json()["incoming"] == []


def test_an_approved_request_frees_a_pending_slot(server: ServerThread) -> None:
    a = register(server.url, "req")
    targets = [register(server.url, "tgt") for _ in range(4)]
    codes = [_request(a, t)["verification_code"] for t in targets[:3]]
    assert _approve(targets[0], codes[0]).status_code == 200
    _request(a, targets[3])


# --- expiry ---------------------------------------------------------------------------------


def test_an_expired_code_answers_code_expired(server: ServerThread, database_url: str) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    created = _request(a, b)
    _expire(database_url, created["request_id"])
    assert_error(_approve(b, created["verification_code"]), 410, "code_expired")
    assert _peers(a) == [] and _peers(b) == []


def test_expired_requests_leave_pending_and_do_not_count_toward_the_limit(
    server: ServerThread, database_url: str
) -> None:
    a = register(server.url, "req")
    b, c, d, e = (register(server.url, "tgt") for _ in range(4))
    expired = _request(a, b)
    _expire(database_url, expired["request_id"])

    assert a.get("/connections/pending").json()["outgoing"] == []
    assert b.get("/connections/pending").json()["incoming"] == []
    assert b.get("/inbox").json()["connection_requests"] == []

    _request(a, c)
    _request(a, d)
    # Requesting the same target anew is allowed once the old request expired.
    fresh = _request(a, b)
    assert fresh["request_id"] != expired["request_id"]
    assert_error(
        a.post("/connections/request", {"target_agent_name": e.name}),
        429,
        "pending_limit_reached",
    )
    assert _approve(b, fresh["verification_code"]).status_code == 200


# --- failed approve attempts ----------------------------------------------------------------


def test_after_ten_wrong_codes_even_the_right_code_is_rate_limited(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    for i in range(10):
        assert_error(_approve(b, _other_code(code, i)), 404, "invalid_code")
    refused = _approve(b, code)
    assert_error(refused, 429, "rate_limited")
    assert _retry_after(refused) >= 1
    assert _peers(b) == []
    # The limit is per agent: another target is not affected by b's failures.
    c = register(server.url, "tgt")
    assert _approve(c, _request(a, c)["verification_code"]).status_code == 200


def test_nine_wrong_codes_still_allow_the_right_one(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    code = _request(a, b)["verification_code"]
    for i in range(9):
        assert_error(_approve(b, _other_code(code, i)), 404, "invalid_code")
    assert _approve(b, code).status_code == 200


# --- reject and cancel --------------------------------------------------------------------------


def test_a_rejected_request_makes_its_code_invalid(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    created = _request(a, b)
    response = b.post("/connections/reject", {"request_id": created["request_id"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "rejected", "request_id": created["request_id"]}
    assert_error(_approve(b, created["verification_code"]), 404, "invalid_code")
    assert a.get("/connections/pending").json()["outgoing"] == []
    assert b.get("/connections/pending").json()["incoming"] == []


def test_the_requester_can_cancel_its_own_request(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    created = _request(a, b)
    response = a.post("/connections/reject", {"request_id": created["request_id"]})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert_error(_approve(b, created["verification_code"]), 404, "invalid_code")
    # A cancelled request does not block a new one to the same target.
    _request(a, b)


def test_a_stranger_cannot_reject_someone_elses_request(server: ServerThread) -> None:
    a, b, c = (register(server.url, p) for p in ("req", "tgt", "eve"))
    created = _request(a, b)
    response = c.post("/connections/reject", {"request_id": created["request_id"]})
    assert_error(response, 404, "not_found")
    assert _approve(b, created["verification_code"]).status_code == 200


def test_rejecting_an_unknown_or_settled_request_is_not_found(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    assert_error(b.post("/connections/reject", {"request_id": "no-such-request"}), 404, "not_found")
    created = _request(a, b)
    assert b.post("/connections/reject", {"request_id": created["request_id"]}).status_code == 200
    assert_error(
        b.post("/connections/reject", {"request_id": created["request_id"]}), 404, "not_found"
    )


# --- revoke ---------------------------------------------------------------------------------------


def test_revoking_stops_messages_both_ways_and_notifies_both(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    connect_agents(a, b)
    assert _can_send(a, b).status_code == 201
    with Socket(server.ws_url) as sa, Socket(server.ws_url) as sb:
        assert sa.auth(a.api_key)["type"] == "auth_ok"
        assert sb.auth(b.api_key)["type"] == "auth_ok"
        response = a.delete(f"/connections/{b.name}")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "revoked", "peer_agent_name": b.name}
        frame_a = sa.recv_type("connection_revoked", timeout=5)
        frame_b = sb.recv_type("connection_revoked", timeout=5)
    assert frame_a["peer_agent_name"] == b.name
    assert frame_b["peer_agent_name"] == a.name
    assert_error(_can_send(a, b), 403, "not_connected")
    assert_error(_can_send(b, a), 403, "not_connected")
    assert _peers(a) == [] and _peers(b) == []


def test_revoking_again_is_not_found(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    connect_agents(a, b)
    assert a.delete(f"/connections/{b.name}").status_code == 200
    assert_error(a.delete(f"/connections/{b.name}"), 404, "not_found")
    assert_error(b.delete(f"/connections/{a.name}"), 404, "not_found")


def test_revoking_a_stranger_or_unknown_name_is_not_found(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    assert_error(a.delete(f"/connections/{b.name}"), 404, "not_found")
    assert_error(a.delete("/connections/nobody-by-this-name"), 404, "not_found")


def test_after_a_revoke_either_side_may_request_anew_and_reconnect(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    connect_agents(a, b)
    assert b.delete(f"/connections/{a.name}").status_code == 200
    # The side that was revoked asks again; the revoker approves.
    code = _request(a, b)["verification_code"]
    assert _approve(b, code).status_code == 200
    assert _can_send(a, b).status_code == 201
    # And the other way round after a second revoke.
    assert a.delete(f"/connections/{b.name}").status_code == 200
    code = _request(b, a)["verification_code"]
    assert _approve(a, code).status_code == 200
    assert _can_send(b, a).status_code == 201
    assert _peers(a) == [b.name] and _peers(b) == [a.name]
