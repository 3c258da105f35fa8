"""A run that fails after the gateway accepted the message is reported, not hidden.

The gateway accepts a message before the agent runs; the run can still fail
before the model reads it (seen live: an allow list matching no tool, a stdio
bridge that cannot start). The bridge asks for each run's outcome (`agent.wait`)
and shows the last failure in `mailbox_status` and `mailbox-mcp doctor`, until a
later run succeeds.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import anyio
import pytest

from mailbox_mcp.inbound.run_watch import RunFailure
from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import MAILBOX_MCP, bridge, bridge_env, send, status_until
from tests.servers import ServerThread

pytestmark = pytest.mark.anyio

NO_TOOLS = (
    "No callable tools remain after resolving explicit tool allowlist "
    "(agents.mailbox.tools.allow: mailbox__*); no registered tools matched."
)


def doctor(env: dict[str, str]) -> str:
    done = subprocess.run(
        [MAILBOX_MCP, "doctor"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.parametrize("agent_id", ["mailbox", "main"])  # the `agent` and sessions_send paths
async def test_a_failed_run_shows_in_status_and_doctor_until_a_run_succeeds(
    mailbox: ServerThread,
    gateway: FakeGateway,
    peers: tuple[Agent, Agent],
    tmp_path: Path,
    agent_id: str,
) -> None:
    me, peer = peers
    key = f"agent:{agent_id}:dm:mailbox-{peer.name}"
    env = bridge_env(mailbox, me, tmp_path, gateway, OPENCLAW_AGENT_ID=agent_id)
    gateway.run_error = NO_TOOLS
    async with bridge(env) as client:
        await send(peer, me, "msg-unread")
        status = await status_until(client, lambda s: s["last_run_failure"] is not None)
        failure = status["last_run_failure"]
        assert f"the run in {key} failed" in failure and NO_TOOLS in failure
        assert "tools.allow" in failure  # the fix
        assert status["delivered"] == 1 and status["last_error"] is None  # delivered all the same

        report = await anyio.to_thread.run_sync(doctor, env)
        assert f"[WARN] agent runs: the run in {key} failed" in report, report
        assert "fix: the agent's tools.allow matches no tool" in report, report

        gateway.run_error = None
        await send(peer, me, "msg-read")
        await status_until(client, lambda s: s["delivered"] == 2 and not s["last_run_failure"])
    assert "agent runs" not in await anyio.to_thread.run_sync(doctor, env)
    assert [i.message.count("msg-") for i in gateway.injections] == [1, 1]


async def test_a_run_that_succeeds_reports_nothing(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    env = bridge_env(mailbox, me, tmp_path, gateway, OPENCLAW_AGENT_ID="mailbox")
    async with bridge(env) as client:
        await send(peer, me, "msg-fine")
        [injection] = await gateway.await_injections(1, timeout=15)
        # the outcome was asked for (agent.wait), and it was ok
        wait = await gateway.await_ws_request("agent.wait", timeout=10)
        status = await status_until(client, lambda s: s["delivered"] == 1)
    assert injection.via == "agent"
    assert wait["params"]["timeoutMs"] > 0
    assert status["last_run_failure"] is None
    assert not (tmp_path / f"run-failure-{me.agent_id}.json").exists()


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (NO_TOOLS, "tools.allow matches no tool"),
        ('No API key found for provider "anthropic"', "working model"),
        ("Agent database cleanup failed", "restart the gateway"),
        ("another OpenClaw process owns state-lifecycle", "restart the gateway"),
        ("something else broke", "open the session agent:mailbox:dm:mailbox-bob"),
    ],
)
def test_each_kind_of_failure_names_its_fix(error: str, fix: str) -> None:
    failure = RunFailure("agent:mailbox:dm:mailbox-bob", error, time.time() - 12)
    assert fix in failure.fix
    assert failure.describe().startswith("the run in agent:mailbox:dm:mailbox-bob failed 12 s ago")
