"""Several bridge processes of one agent (OpenClaw starts one per session): one listens."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskStatus
from mcp import Client

from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env, landed, send, status_until
from tests.servers import ServerThread

pytestmark = pytest.mark.anyio


async def test_bridges_sharing_a_state_dir_elect_one_listener_and_hand_over(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    env = bridge_env(mailbox, me, tmp_path, gateway)
    first_may_exit, first_exited = anyio.Event(), anyio.Event()

    async def first_process(*, task_status: TaskStatus[Client]) -> None:
        async with bridge(env) as client:
            task_status.started(client)
            await first_may_exit.wait()
        first_exited.set()

    async with anyio.create_task_group() as tasks:
        first = await tasks.start(first_process)
        holder = await status_until(first, lambda s: s["listener"] == "connected")
        assert holder["listening_process"].endswith("(this process)")
        async with bridge(env) as second:
            standby = await status_until(second, lambda s: s["listening_process"] is not None)
            assert standby["listener"].startswith("standby")
            assert holder["listening_process"].split()[1] in standby["listening_process"]
            await send(peer, me, "msg-1")
            await gateway.await_injections(1, timeout=15)
            # The holder exits: the standby bridge takes the listener over within 5 s.
            first_may_exit.set()
            await first_exited.wait()
            took_over = await status_until(second, lambda s: s["listener"] == "connected", 5)
            assert took_over["listening_process"].endswith("(this process)")
            await send(peer, me, "msg-2")
            await gateway.await_injections(2, timeout=15)
    assert landed(gateway) == ["msg-1", "msg-2"]
    assert gateway.injections[0].message != gateway.injections[1].message
