"""The OpenClaw gateway client against a fake gateway on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.openclaw.gateway_errors import (
    SESSIONS_SEND_FIX,
    GatewayAuthError,
    GatewayError,
    GatewayRejected,
    GatewayToolNotAllowed,
    GatewayUnreachable,
)
from mailbox_mcp.openclaw.probe import check_gateway
from tests.fakes.openclaw_gateway import FakeGateway

TOKEN = "gw-secret-token-1234567890"
KEY = "agent:main:dm:mailbox-bob"
TEXT = '[AGENT MAILBOX — INCOMING MESSAGE]\n\nFrom agent : "bob"\n\nhé ✓ "quotes" {json: 1}\n'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gw() -> Iterator[FakeGateway]:
    with FakeGateway(token=TOKEN) as gateway:
        yield gateway


def client_for(
    gw: FakeGateway, *, token: str = TOKEN, url: str | None = None, **timeouts: float
) -> GatewayClient:
    return GatewayClient(url or gw.url, token, "main", "0.1.0-test", **timeouts)


def assert_token_hidden(exc: BaseException, token: str = TOKEN) -> None:
    assert token not in str(exc)
    assert token not in repr(exc)
    assert token not in (getattr(exc, "fix", None) or "")


# -- sessions and injection -------------------------------------------------------


@pytest.mark.anyio
async def test_injected_text_is_accepted_verbatim_with_the_session_as_its_own_caller(
    gw: FakeGateway,
) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        await client.inject(KEY, TEXT)

    [injection] = gw.injections
    assert injection.key == KEY
    assert injection.caller == KEY
    assert injection.message == TEXT
    assert injection.via == "sessions_send"
    assert injection.timeout_seconds == 0
    [body] = gw.invoke_bodies
    assert body == {
        "tool": "sessions_send",
        "sessionKey": KEY,
        "args": {"sessionKey": KEY, "message": TEXT, "timeoutSeconds": 0},
    }
    assert gw.sessions[KEY] == {"agentId": "main", "label": "mailbox-bob"}


@pytest.mark.anyio
async def test_connect_request_follows_the_contract(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")

    [params] = gw.connect_params
    assert params == {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {
            "id": "gateway-client",
            "version": "0.1.0-test",
            "platform": sys.platform,
            "mode": "backend",
        },
        "role": "operator",
        "scopes": ["operator.read", "operator.write"],
        "caps": [],
        "commands": [],
        "permissions": {},
        "auth": {"token": TOKEN},
    }
    [create] = gw.ws_requests
    assert create["method"] == "sessions.create"
    assert create["params"] == {"key": KEY, "agentId": "main", "label": "mailbox-bob"}


@pytest.mark.anyio
async def test_ensure_session_asks_the_gateway_once_per_key_until_forgotten(
    gw: FakeGateway,
) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        await client.ensure_session(KEY, "mailbox-bob")
        assert gw.sessions_create_calls == 1
        client.forget_session(KEY)
        await client.ensure_session(KEY, "mailbox-bob")
        assert gw.sessions_create_calls == 2


@pytest.mark.anyio
async def test_inject_creates_a_missing_session_first(gw: FakeGateway) -> None:
    key = "agent:mailbox:dm:mailbox-carol"
    async with client_for(gw) as client:
        await client.inject(key, "hello")

    assert gw.sessions[key] == {"agentId": "mailbox", "label": "mailbox-carol"}
    assert [(i.key, i.message) for i in gw.injections] == [(key, "hello")]


@pytest.mark.anyio
async def test_session_lost_in_a_gateway_restart_is_created_again(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.inject(KEY, "first")
        gw.forget_sessions()
        await client.inject(KEY, "second")

    assert [i.message for i in gw.injections] == ["first", "second"]
    assert gw.sessions_create_calls == 2
    statuses = [b["tool"] for b in gw.invoke_bodies]
    assert statuses == ["sessions_send"] * 3  # first, refused second, retried second


@pytest.mark.anyio
async def test_gateway_stopped_and_started_on_the_same_port_is_used_again(
    gw: FakeGateway,
) -> None:
    async with client_for(gw) as client:
        await client.inject(KEY, "before")
        gw.stop()
        with pytest.raises(GatewayUnreachable) as down:
            await client.inject(KEY, "while down")
        assert down.value.retryable
        gw.forget_sessions()
        gw.start()
        await client.inject(KEY, "after")

    assert [i.message for i in gw.injections] == ["before", "after"]


@pytest.mark.anyio
async def test_session_missing_again_after_the_retry_is_a_retryable_rejection(
    gw: FakeGateway,
) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.reject_next(2, f"No session found: {KEY}")
        with pytest.raises(GatewayRejected) as exc:
            await client.inject(KEY, "hello")

    assert exc.value.retryable
    assert "No session found" in str(exc.value)
    assert gw.sessions_create_calls == 2
    assert len(gw.invoke_bodies) == 2
    assert gw.injections == []


@pytest.mark.anyio
async def test_status_other_than_accepted_is_not_delivered(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.reject_next(1, "queue is full")
        with pytest.raises(GatewayRejected) as exc:
            await client.inject(KEY, "hello")
        await client.inject(KEY, "hello again")

    assert exc.value.status == "error"
    assert "queue is full" in str(exc.value)
    assert gw.sessions_create_calls == 1
    assert [i.message for i in gw.injections] == ["hello again"]


@pytest.mark.anyio
async def test_inject_via_agent_carries_inter_session_provenance(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.inject_via_agent(KEY, TEXT, "msg-42")
        await client.inject_via_agent(KEY, "second", "msg-43")

    first, second = gw.injections
    assert first.via == "agent"
    assert first.key == KEY
    assert first.message == TEXT
    assert first.idempotency_key == "msg-42"
    assert first.input_provenance == {
        "kind": "inter_session",
        "sourceSessionKey": KEY,
        "sourceTool": "sessions_send",
    }
    assert second.idempotency_key == "msg-43"
    assert gw.sessions[KEY]["label"] == "mailbox-bob"
    assert gw.sessions_create_calls == 1
    assert gw.invoke_bodies == []


@pytest.mark.anyio
async def test_inject_via_agent_refused_by_the_gateway_raises(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.fail_next_ws(1, code="UNAVAILABLE", message="agent busy")
        with pytest.raises(GatewayUnreachable) as exc:
            await client.inject_via_agent(KEY, "hello", "msg-1")

    assert exc.value.retryable
    assert "agent busy" in str(exc.value)
    assert gw.injections == []


@pytest.mark.anyio
async def test_recorded_injections_can_be_awaited(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.inject(KEY, "one")
    [injection] = await gw.await_injections(1, timeout=5)
    assert injection.message == "one"
    with pytest.raises(TimeoutError):
        gw.wait_for_injections(2, timeout=0.05)


# -- errors ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_not_allowed_names_the_config_fix(gw: FakeGateway) -> None:
    gw.allowed_tools.discard("sessions_send")
    async with client_for(gw) as client:
        with pytest.raises(GatewayToolNotAllowed) as exc:
            await client.inject(KEY, "hello")

    assert not exc.value.retryable
    assert "Tool not available: sessions_send" in str(exc.value)
    assert exc.value.fix == SESSIONS_SEND_FIX
    assert '"gateway": {"tools": {"allow": ["sessions_send"]}}' in exc.value.fix
    assert gw.injections == []


@pytest.mark.anyio
async def test_wrong_token_on_the_websocket_is_an_auth_error(gw: FakeGateway) -> None:
    wrong = "wrong-token-abcdef"
    async with client_for(gw, token=wrong) as client:
        with pytest.raises(GatewayAuthError) as exc:
            await client.ensure_session(KEY, "mailbox-bob")

    assert not exc.value.retryable
    assert exc.value.fix is not None and "OPENCLAW_GATEWAY_TOKEN" in exc.value.fix
    assert_token_hidden(exc.value, wrong)
    assert gw.sessions == {}


@pytest.mark.anyio
async def test_wrong_token_over_http_is_an_auth_error(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.token = "rotated-token"
        with pytest.raises(GatewayAuthError) as exc:
            await client.inject(KEY, "hello")

    assert not exc.value.retryable
    assert exc.value.fix is not None and "OPENCLAW_GATEWAY_TOKEN" in exc.value.fix
    assert "401" in str(exc.value)
    assert_token_hidden(exc.value)
    assert gw.injections == []


@pytest.mark.anyio
async def test_gateway_down_is_retryable(gw: FakeGateway) -> None:
    gw.stop()
    async with client_for(gw) as client:
        with pytest.raises(GatewayUnreachable) as ws_exc:
            await client.ensure_session(KEY, "mailbox-bob")
        client_created_nothing = gw.sessions_create_calls == 0
        with pytest.raises(GatewayUnreachable) as agent_exc:
            await client.inject_via_agent(KEY, "hello", "msg-1")

    assert client_created_nothing
    for exc in (ws_exc.value, agent_exc.value):
        assert isinstance(exc, GatewayError)
        assert exc.retryable
        assert exc.fix is not None and "OPENCLAW_GATEWAY_URL" in exc.fix
        assert_token_hidden(exc)


@pytest.mark.anyio
async def test_server_errors_are_retryable_and_the_next_try_succeeds(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.fail_next(1, status=503)
        with pytest.raises(GatewayUnreachable) as exc:
            await client.inject(KEY, "hello")
        await client.inject(KEY, "hello")

    assert exc.value.retryable
    assert "503" in str(exc.value)
    assert [i.message for i in gw.injections] == ["hello"]


@pytest.mark.anyio
async def test_rate_limit_is_retryable_with_the_gateways_retry_after(gw: FakeGateway) -> None:
    async with client_for(gw) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.fail_next(1, status=429, retry_after=7)
        with pytest.raises(GatewayUnreachable) as exc:
            await client.inject(KEY, "hello")

    assert exc.value.retryable
    assert exc.value.retry_after == 7
    assert gw.injections == []


@pytest.mark.anyio
async def test_slow_gateway_times_out_as_unreachable(gw: FakeGateway) -> None:
    async with client_for(gw, request_timeout=0.2) as client:
        await client.ensure_session(KEY, "mailbox-bob")
        gw.delay_seconds = 30
        with pytest.raises(GatewayUnreachable) as exc:
            await client.inject(KEY, "hello")

    assert exc.value.retryable
    assert "timed out" in str(exc.value)


@pytest.mark.anyio
async def test_missing_connect_challenge_times_out_as_unreachable(gw: FakeGateway) -> None:
    gw.send_challenge = False
    async with client_for(gw, connect_timeout=0.2) as client:
        with pytest.raises(GatewayUnreachable) as exc:
            await client.ensure_session(KEY, "mailbox-bob")

    assert exc.value.retryable
    assert gw.connect_params == []


@pytest.mark.anyio
async def test_unknown_agent_id_is_a_rejection_that_names_the_fix() -> None:
    with FakeGateway(token=TOKEN, known_agent_ids={"main"}) as gw:
        async with client_for(gw) as client:
            with pytest.raises(GatewayRejected) as exc:
                await client.ensure_session("agent:mailbox:dm:mailbox-bob", "mailbox-bob")
            await client.ensure_session(KEY, "mailbox-bob")

    assert not exc.value.retryable
    assert 'Unknown agent id "mailbox"' in str(exc.value)
    assert exc.value.fix is not None and "agents.entries" in exc.value.fix
    assert list(gw.sessions) == [KEY]


def test_gateway_url_must_be_http_or_ws() -> None:
    with pytest.raises(ValueError, match="OPENCLAW_GATEWAY_URL"):
        GatewayClient("ftp://example.org", TOKEN, "main", "0")


@pytest.mark.anyio
async def test_ws_url_is_accepted_as_gateway_url(gw: FakeGateway) -> None:
    async with client_for(gw, url=gw.ws_url) as client:
        assert client.url == gw.url
        await client.inject(KEY, "hello")
    assert len(gw.injections) == 1


# -- doctor -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_check_passes_without_creating_a_session_or_starting_a_run(
    gw: FakeGateway,
) -> None:
    async with client_for(gw) as client:
        check = await check_gateway(client)

    assert check.ok
    assert (check.reachable, check.token_accepted, check.sessions_send_allowed) == (
        True,
        True,
        True,
    )
    assert check.fixes == []
    assert gw.sessions == {}
    assert gw.injections == []
    [probe] = gw.invoke_bodies
    assert probe["tool"] == "sessions_send"
    assert probe["args"]["sessionKey"].startswith("agent:main:dm:mailbox-doctor-probe-")
    assert probe["sessionKey"] == probe["args"]["sessionKey"]


@pytest.mark.anyio
async def test_check_reports_sessions_send_not_allowed(gw: FakeGateway) -> None:
    gw.allowed_tools.clear()
    async with client_for(gw) as client:
        check = await check_gateway(client)

    assert not check.ok
    assert check.reachable and check.token_accepted
    assert check.sessions_send_allowed is False
    assert check.sessions_send_fix is not None
    assert '"allow": ["sessions_send"]' in check.sessions_send_fix
    assert check.fixes == [check.sessions_send_fix]


@pytest.mark.anyio
async def test_check_reports_a_wrong_token(gw: FakeGateway) -> None:
    wrong = "wrong-token-abcdef"
    async with client_for(gw, token=wrong) as client:
        check = await check_gateway(client)

    assert not check.ok
    assert check.reachable
    assert check.token_accepted is False
    assert check.token_fix is not None and "OPENCLAW_GATEWAY_TOKEN" in check.token_fix
    assert wrong not in " ".join(check.fixes)


@pytest.mark.anyio
async def test_check_reports_an_unreachable_gateway(gw: FakeGateway) -> None:
    gw.stop()
    async with client_for(gw) as client:
        check = await check_gateway(client)

    assert not check.ok
    assert check.reachable is False
    assert check.token_accepted is None
    assert check.sessions_send_allowed is None
    assert check.reachable_fix is not None and "OPENCLAW_GATEWAY_URL" in check.reachable_fix


@pytest.mark.anyio
async def test_check_reports_a_sessions_send_probe_refused_for_another_reason(
    gw: FakeGateway,
) -> None:
    gw.reject_next(1, "sessions_send is forbidden for this agent", status="forbidden")
    async with client_for(gw) as client:
        check = await check_gateway(client)

    assert not check.ok
    assert check.reachable and check.token_accepted
    assert check.sessions_send_allowed is False
    assert check.sessions_send_fix is not None
    assert "forbidden for this agent" in check.sessions_send_fix
