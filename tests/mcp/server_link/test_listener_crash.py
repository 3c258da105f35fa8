"""A crash between injecting a message and acknowledging it must not inject it twice.

Process death is simulated by cancelling the listener inside the delivery
step, after the gateway accepted the message and before the ack left; the
"restarted" listener opens the same state directory, exactly as a new bridge
process would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

import mailbox_wire as wire
from mailbox_mcp.inbound.delivered_log import DeliveredLog
from mailbox_mcp.inbound.injector import Injector
from mailbox_mcp.openclaw.gateway import GatewayClient
from mailbox_mcp.server_link.listener import Listener
from mailbox_mcp.settings import BridgeSettings
from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import GATEWAY_TOKEN, send
from tests.servers import ServerThread
from tests.waiting import wait_until_async

pytestmark = pytest.mark.anyio


def _settings(
    server: ServerThread, agent: Agent, gateway: FakeGateway, state: Path
) -> BridgeSettings:
    return BridgeSettings(
        MAILBOX_SERVER_URL=server.url,
        MAILBOX_API_KEY=agent.api_key,
        OPENCLAW_GATEWAY_URL=gateway.url,
        OPENCLAW_GATEWAY_TOKEN=GATEWAY_TOKEN,
        MAILBOX_STATE_DIR=str(state),
        MAILBOX_RETRY_INITIAL_SECONDS=0.05,
        MAILBOX_RETRY_MAX_SECONDS=0.3,
    )


async def test_crash_after_delivery_before_ack_does_not_inject_twice(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    settings = _settings(mailbox, me, gateway, tmp_path)
    ws_url = mailbox.ws_url

    async with GatewayClient(gateway.url, GATEWAY_TOKEN, "main", "test") as client:
        store = DeliveredLog(tmp_path, me.agent_id)
        injector = Injector(settings, client, store)
        crashed = anyio.Event()

        async with anyio.create_task_group() as tasks:

            async def deliver_then_die(message: wire.Message) -> bool:
                await injector.deliver(message)
                crashed.set()
                tasks.cancel_scope.cancel()  # the process dies before the ack is sent
                await anyio.sleep_forever()
                return True

            tasks.start_soon(Listener(ws_url, me.api_key, store, deliver_then_die).run)
            await send(peer, me, "msg-once")
            with anyio.fail_after(15):
                await crashed.wait()
        store.close()

        assert [m["seq"] for m in me.get("/inbox").json()["messages"]] == [1], "not acknowledged"

        # The restarted bridge: same state directory. Message 1 is still unacknowledged on
        # the server; the bridge resumes after what it recorded and never injects it again.
        store = DeliveredLog(tmp_path, me.agent_id)
        injector = Injector(settings, client, store)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(Listener(ws_url, me.api_key, store, injector.deliver).run)
            await send(peer, me, "msg-sentinel")
            await gateway.await_injections(2, timeout=15)
            await wait_until_async(
                lambda: not me.get("/inbox").json()["messages"],
                within=10,
                what="the inbox acknowledged",
            )
            tasks.cancel_scope.cancel()
        store.close()

    contents = [i.message for i in gateway.injections]
    assert len(contents) == 2
    assert "msg-once" in contents[0] and "msg-sentinel" in contents[1]


async def test_a_recorded_message_is_never_injected_again(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, _ = peers
    settings = _settings(mailbox, me, gateway, tmp_path)
    message = wire.Message(
        message_id="m-1",
        seq=1,
        session_id="s-1",
        from_agent="peer-agent",
        to_agent=me.name,
        subject="hello",
        content="msg-once",
        created_at=datetime.now(UTC),
        correlation_id=None,
        encrypted=False,
        encryption=None,
        delivered_at=None,
    )
    async with GatewayClient(gateway.url, GATEWAY_TOKEN, "main", "test") as client:
        first = Injector(settings, client, DeliveredLog(tmp_path, me.agent_id))
        assert await first.deliver(message) is True
        first.log_store.close()
        # A new process opens the same state directory and is handed the same message.
        second = Injector(settings, client, DeliveredLog(tmp_path, me.agent_id))
        assert await second.deliver(message) is False
        second.log_store.close()
    assert len(gateway.injections) == 1
    assert second.status.skipped_duplicates == 1
