"""Push mode: each message injected into its per-peer OpenClaw session, exactly once.

The real server, the real bridge over stdio, and a fake gateway that speaks
OpenClaw's wire format. "Exactly once" is checked with a sentinel: delivery
is in order, so once a later message has landed, a duplicate of an earlier
one would already have landed too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbox_mcp.inbound import envelope
from mailbox_mcp.safety import handles, secret_key
from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent, connect_agents, register
from tests.mcp.conftest import bridge, bridge_env, landed, reply_token, send, status_until
from tests.servers import ServerThread

pytestmark = pytest.mark.anyio


def _key(me_agent_id: str, peer: Agent) -> str:
    return f"agent:{me_agent_id}:dm:mailbox-{peer.name}"


async def test_a_message_lands_in_its_per_peer_session_wrapped_with_caller_equal_to_target(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        sent = await send(peer, me, "msg-1\nplease review", subject="Review")
        [injection] = await gateway.await_injections(1, timeout=15)
    key = _key("main", peer)
    assert injection.key == key and injection.caller == key
    assert injection.timeout_seconds == 0 and injection.via == "sessions_send"
    assert key in gateway.sessions
    lines = injection.message.splitlines()
    nonce = lines[6].removeprefix("[BEGIN AGENT_MSG_").removesuffix("]")
    token = reply_token(injection.message)
    assert injection.message == envelope.wrap_incoming_message(
        from_agent=peer.name,
        subject="Review",
        content="msg-1\nplease review",
        session_id=sent["session_id"],
        reply_token=token,
        nonce=nonce,
    )
    # the handle answers this peer in this conversation, and was minted by our bridge
    key = secret_key.derive(secret_key.load_or_create(tmp_path), "reply-handle")
    handle = handles.verify(token, key=key, agent_id=me.agent_id, epoch_of=lambda _: 0)
    assert (handle.peer, handle.session_id) == (peer.name, sent["session_id"])


async def test_two_peers_land_in_two_sessions_never_in_main(
    mailbox: ServerThread, gateway: FakeGateway, tmp_path: Path
) -> None:
    me, alice, bob = (register(mailbox.url, n) for n in ("me", "alice", "bob"))
    connect_agents(me, alice)
    connect_agents(me, bob)
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await send(alice, me, "msg-a")
        await send(bob, me, "msg-b")
        injections = await gateway.await_injections(2, timeout=15)
    assert {i.key for i in injections} == {_key("main", alice), _key("main", bob)}
    assert all("main:main" not in i.key and i.caller == i.key for i in injections)
    by_key = {i.key: i.message for i in injections}
    assert "msg-a" in by_key[_key("main", alice)] and "msg-b" in by_key[_key("main", bob)]


async def test_messages_of_one_peer_arrive_in_order(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        for i in range(10):
            await send(peer, me, f"msg-{i}")
        await gateway.await_injections(10, timeout=20)
    assert landed(gateway) == [f"msg-{i}" for i in range(10)]


async def test_gateway_down_then_up_delivers_exactly_once(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    gateway.stop()
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)) as client:
        await send(peer, me, "msg-while-down")
        status = await status_until(client, lambda s: s["last_error"] is not None)
        assert "OpenClaw" in status["last_error"]
        assert me.get("/inbox").json()["messages"], "nothing may be acknowledged while undelivered"
        gateway.start()
        await gateway.await_injections(1, timeout=15)
        await send(peer, me, "msg-sentinel")
        await gateway.await_injections(2, timeout=15)
        status = await status_until(client, lambda s: s["last_error"] is None)
    assert landed(gateway) == ["msg-while-down", "msg-sentinel"]
    assert status["delivered"] == 2


async def test_sessions_send_not_allowed_is_reported_with_the_fix_then_recovers(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    gateway.allowed_tools = {"sessions_history"}
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)) as client:
        await send(peer, me, "msg-refused")
        status = await status_until(client, lambda s: s["fix"] is not None)
        assert "sessions_send" in status["fix"] and "allow" in status["fix"]
        gateway.allowed_tools = {"sessions_send", "sessions_history"}
        await gateway.await_injections(1, timeout=15)
    assert landed(gateway) == ["msg-refused"]


async def test_a_gateway_restart_that_lost_the_session_recreates_it(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await send(peer, me, "msg-1")
        await gateway.await_injections(1, timeout=15)
        gateway.forget_sessions()
        await send(peer, me, "msg-2")
        await gateway.await_injections(2, timeout=15)
    assert landed(gateway) == ["msg-1", "msg-2"]
    assert gateway.sessions_create_calls >= 2


async def test_a_message_sent_while_the_bridge_was_off_is_injected_when_it_starts(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    await send(peer, me, "msg-offline")
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)):
        await gateway.await_injections(1, timeout=15)
    assert landed(gateway) == ["msg-offline"]


async def test_a_restarted_bridge_never_injects_again(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    env = bridge_env(mailbox, me, tmp_path, gateway)
    async with bridge(env):
        await send(peer, me, "msg-1")
        await gateway.await_injections(1, timeout=15)
    async with bridge(env):
        await send(peer, me, "msg-2")
        await gateway.await_injections(2, timeout=15)
    assert landed(gateway) == ["msg-1", "msg-2"]


async def test_a_server_restart_is_survived_with_nothing_lost(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    async with bridge(bridge_env(mailbox, me, tmp_path, gateway)) as client:
        await send(peer, me, "msg-before")
        await gateway.await_injections(1, timeout=15)
        mailbox.stop()
        await status_until(client, lambda s: s["listener"] == "reconnecting")
        mailbox.start()
        await status_until(client, lambda s: s["listener"] == "connected")
        await send(peer, me, "msg-after")
        await gateway.await_injections(2, timeout=15)
    assert landed(gateway) == ["msg-before", "msg-after"]


async def test_a_second_listener_with_the_same_key_stops_the_first_with_a_reason(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, _ = peers
    async with bridge(bridge_env(mailbox, me, tmp_path / "one", gateway)) as first:
        await status_until(first, lambda s: s["listener"] == "connected")
        async with bridge(bridge_env(mailbox, me, tmp_path / "two", gateway)) as second:
            await status_until(second, lambda s: s["listener"] == "connected")
            status = await status_until(first, lambda s: s["listener"] == "stopped")
    assert "4000" in status["listener_reason"]


async def test_a_bad_key_stops_the_listener_and_says_so(
    mailbox: ServerThread, gateway: FakeGateway, tmp_path: Path
) -> None:
    ghost = register(mailbox.url, "ghost")
    ghost.post("/agents/me/rotate-key")  # the key in hand no longer works
    async with bridge(bridge_env(mailbox, ghost, tmp_path, gateway)) as client:
        status = await status_until(client, lambda s: s["last_error"] is not None)
    assert "API key" in status["last_error"] or "api key" in status["last_error"].lower()


async def test_a_dedicated_peer_agent_is_injected_through_the_agent_method(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    """A fenced-off agent may not use session tools, so HTTP sessions_send is refused for it
    (OpenClaw applies the caller's policy): the bridge uses the gateway's `agent` method."""
    me, peer = peers
    gateway.allowed_tools = set()  # not even sessions_send: the agent path must not need it
    env = bridge_env(mailbox, me, tmp_path, gateway, OPENCLAW_AGENT_ID="mailbox")
    async with bridge(env) as client:
        sent = await send(peer, me, "msg-fenced")
        [injection] = await gateway.await_injections(1, timeout=15)
        status = await status_until(client, lambda s: s["delivered"] == 1)
    key = f"agent:mailbox:dm:mailbox-{peer.name}"
    assert injection.via == "agent" and injection.key == key
    assert injection.idempotency_key == sent["message_id"]
    assert injection.input_provenance == {
        "kind": "inter_session",
        "sourceSessionKey": key,
        "sourceTool": "sessions_send",
    }
    assert status["injection"] == "agent"
    assert gateway.invoke_bodies == []  # nothing went through HTTP /tools/invoke
