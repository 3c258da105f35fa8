"""Agents: registration, names, API keys, auth headers, key rotation and rate limits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from server.security import looks_like_api_key, new_api_key
from tests.helpers import assert_error, register, unique_name
from tests.servers import ServerThread, server_settings

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _client(server: ServerThread) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


def _typo(key: str, position: int) -> str:
    """The key with one character changed to another valid base62 character."""
    old = key[position]
    new = _BASE62[(_BASE62.index(old) + 1) % len(_BASE62)]
    return key[:position] + new + key[position + 1 :]


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after")
    assert value is not None, f"no Retry-After header: {dict(response.headers)}"
    assert value.isdigit(), value
    return int(value)


# --- registration ----------------------------------------------------------------


def test_registration_answers_201_with_id_name_and_a_checksummed_key(
    server: ServerThread,
) -> None:
    name = unique_name("reg")
    with _client(server) as http:
        response = http.post("/agents/register", json={"name": name, "description": "a helper"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"agent_id", "name", "api_key"}
    assert body["name"] == name
    assert uuid.UUID(body["agent_id"])
    assert body["api_key"].startswith("amb_")
    assert looks_like_api_key(body["api_key"])


def test_every_registration_gets_a_different_key_and_id(server: ServerThread) -> None:
    a, b = register(server.url), register(server.url)
    assert a.api_key != b.api_key
    assert a.agent_id != b.agent_id


def test_a_name_can_be_registered_only_once(server: ServerThread) -> None:
    first = register(server.url, "dup")
    response = first.http.post("/agents/register", json={"name": first.name})
    assert_error(response, 409, "name_taken")
    # The first owner's key still works and still names the first agent.
    assert first.get("/agents/me").json()["agent_id"] == first.agent_id


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Uppercase-agent", id="uppercase"),
        pytest.param("-leading-dash", id="leading-dash"),
        pytest.param("trailing-dash-", id="trailing-dash"),
        pytest.param("ab", id="too-short"),
        pytest.param("a" * 33, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("agént", id="unicode"),
        pytest.param("under_score", id="underscore"),
        pytest.param("dot.name", id="dot"),
        pytest.param("abc\n", id="trailing-newline"),
        pytest.param("", id="empty"),
    ],
)
def test_names_outside_the_pattern_are_refused_with_validation_error(
    server: ServerThread, name: str
) -> None:
    with _client(server) as http:
        response = http.post("/agents/register", json={"name": name})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("length", [3, 32])
def test_names_at_the_length_bounds_are_accepted(server: ServerThread, length: int) -> None:
    name = ("n" + uuid.uuid4().hex + uuid.uuid4().hex)[:length]
    with _client(server) as http:
        response = http.post("/agents/register", json={"name": name})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


def test_a_description_over_500_characters_is_refused(server: ServerThread) -> None:
    with _client(server) as http:
        response = http.post(
            "/agents/register", json={"name": unique_name(), "description": "d" * 501}
        )
    assert_error(response, 422, "validation_error")


# --- who am I ----------------------------------------------------------------------


def test_agents_me_describes_the_caller(server: ServerThread) -> None:
    name = unique_name("me")
    before = datetime.now(UTC)
    with _client(server) as http:
        created = http.post("/agents/register", json={"name": name, "description": "desc here"})
        assert created.status_code == 201, created.text
        key = created.json()["api_key"]
        response = http.get("/agents/me", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"agent_id", "name", "description", "created_at"}
    assert body["agent_id"] == created.json()["agent_id"]
    assert body["name"] == name
    assert body["description"] == "desc here"
    created_at = datetime.fromisoformat(body["created_at"])
    assert created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC) + timedelta(seconds=5)


def test_an_agent_registered_without_description_has_null_description(
    server: ServerThread,
) -> None:
    agent = register(server.url)
    assert agent.get("/agents/me").json()["description"] is None


# --- auth headers -----------------------------------------------------------------


def test_the_key_works_as_a_bearer_token(server: ServerThread) -> None:
    agent = register(server.url)
    response = agent.http.get("/agents/me", headers={"Authorization": f"Bearer {agent.api_key}"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == agent.name


def test_the_key_works_in_the_x_api_key_header(server: ServerThread) -> None:
    agent = register(server.url)
    response = agent.http.get("/agents/me", headers={"X-API-Key": agent.api_key})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == agent.name


def test_a_request_without_a_key_is_unauthorized(server: ServerThread) -> None:
    with _client(server) as http:
        assert_error(http.get("/agents/me"), 401, "unauthorized")
        assert_error(http.get("/connections"), 401, "unauthorized")
        assert_error(http.post("/messages/send", json={}), 401, "unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer garbage"}, id="bearer-garbage"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param({"X-API-Key": "amb_"}, id="prefix-only"),
        pytest.param({"X-API-Key": "amb_" + "x" * 49}, id="right-length-bad-checksum"),
        pytest.param({"X-API-Key": "sk-" + "a" * 48}, id="foreign-key"),
        pytest.param({"X-API-Key": "a" * 5000}, id="very-long"),
    ],
)
def test_a_garbage_key_is_unauthorized(server: ServerThread, headers: dict[str, str]) -> None:
    with _client(server) as http:
        assert_error(http.get("/agents/me", headers=headers), 401, "unauthorized")


def test_a_one_character_typo_in_the_key_is_unauthorized(server: ServerThread) -> None:
    agent = register(server.url)
    for position in (4, 20, len(agent.api_key) - 1):
        typo = _typo(agent.api_key, position)
        assert typo != agent.api_key
        assert not looks_like_api_key(typo)
        response = agent.http.get("/agents/me", headers={"Authorization": f"Bearer {typo}"})
        assert_error(response, 401, "unauthorized")


def test_a_well_formed_key_that_was_never_issued_is_unauthorized(server: ServerThread) -> None:
    stranger = new_api_key()
    assert looks_like_api_key(stranger)
    with _client(server) as http:
        response = http.get("/agents/me", headers={"X-API-Key": stranger})
    assert_error(response, 401, "unauthorized")


# --- key rotation ----------------------------------------------------------------------


def test_rotating_the_key_returns_a_new_key_and_refuses_the_old_one_at_once(
    server: ServerThread,
) -> None:
    agent = register(server.url)
    old_key = agent.api_key
    # Warm any cache with the old key first.
    assert agent.get("/agents/me").status_code == 200
    response = agent.post("/agents/me/rotate-key")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"api_key"}
    new_key = response.json()["api_key"]
    assert new_key != old_key
    assert looks_like_api_key(new_key)

    old = agent.http.get("/agents/me", headers={"Authorization": f"Bearer {old_key}"})
    assert_error(old, 401, "unauthorized")
    old_header = agent.http.get("/agents/me", headers={"X-API-Key": old_key})
    assert_error(old_header, 401, "unauthorized")

    new = agent.http.get("/agents/me", headers={"Authorization": f"Bearer {new_key}"})
    assert new.status_code == 200, new.text
    assert new.json()["agent_id"] == agent.agent_id
    assert new.json()["name"] == agent.name


def test_the_old_key_cannot_rotate_again_after_a_rotation(server: ServerThread) -> None:
    agent = register(server.url)
    old_key = agent.api_key
    assert agent.post("/agents/me/rotate-key").status_code == 200
    again = agent.http.post("/agents/me/rotate-key", headers={"Authorization": f"Bearer {old_key}"})
    assert_error(again, 401, "unauthorized")


# --- rate limits (dedicated servers) ---------------------------------------------------


def test_the_third_registration_from_one_address_is_rate_limited(
    fresh_database_url: str,
) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=2)
    with ServerThread(settings) as limited, _client(limited) as http:
        for _ in range(2):
            ok = http.post("/agents/register", json={"name": unique_name()})
            assert ok.status_code == 201, ok.text
        refused = http.post("/agents/register", json={"name": unique_name()})
        assert_error(refused, 429, "rate_limited")
        assert 1 <= _retry_after(refused) <= 3600


def test_a_refused_registration_does_not_use_up_the_allowance(fresh_database_url: str) -> None:
    settings = server_settings(fresh_database_url, MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT=2)
    with ServerThread(settings) as limited, _client(limited) as http:
        first = http.post("/agents/register", json={"name": unique_name()})
        assert first.status_code == 201, first.text
        taken = http.post("/agents/register", json={"name": first.json()["name"]})
        assert_error(taken, 409, "name_taken")
        invalid = http.post("/agents/register", json={"name": "NOPE"})
        assert_error(invalid, 422, "validation_error")
        second = http.post("/agents/register", json={"name": unique_name()})
        assert second.status_code == 201, second.text


def test_the_fourth_quick_request_with_one_key_is_rate_limited(fresh_database_url: str) -> None:
    settings = server_settings(
        fresh_database_url, MAILBOX_REQUESTS_PER_SECOND=1, MAILBOX_REQUEST_BURST=3
    )
    with ServerThread(settings) as limited:
        agent = register(limited.url)
        other = register(limited.url)
        statuses = [agent.get("/agents/me").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = agent.get("/agents/me")
        assert_error(refused, 429, "rate_limited")
        assert _retry_after(refused) >= 1
        # The limit is per key: another agent is not affected.
        assert other.get("/agents/me").status_code == 200
