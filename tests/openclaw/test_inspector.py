"""The MCP Inspector's CLI as a second real MCP client of ``python -m mailbox_mcp``.

The Inspector (npm ``@modelcontextprotocol/inspector``, pinned in
``scripts/install-openclaw.sh``) starts the bridge over stdio itself, with the
environment given by ``-e KEY=VALUE``, and prints one JSON object per call
(``--format json``). It needs Node >= 22: the install's Node 24 comes first on PATH.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers import Agent
from tests.mcp.conftest import bridge, bridge_env
from tests.openclaw.conftest import peer_of, requires_openclaw
from tests.openclaw.gateway import OpenClawInstall
from tests.servers import ServerThread

pytestmark = [
    requires_openclaw,
    pytest.mark.openclaw,
    pytest.mark.anyio,
    pytest.mark.timeout(420),  # a cold install takes about a minute
]

BRIDGE_TOOLS = {
    "mailbox_send",
    "mailbox_inbox",
    "mailbox_history",
    "mailbox_connect",
    "mailbox_pending",
    "mailbox_approve",
    "mailbox_connections",
    "mailbox_status",
}


async def inspector(
    install: OpenClawInstall, home: Path, bridge_env: dict[str, str], *method_args: str
) -> dict[str, Any]:
    """``mcp-inspector --cli --format json -e ... <python> -m mailbox_mcp METHOD_ARGS``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MAILBOX_", "OPENCLAW_"))},
        "PATH": install.path_with_node(),
        # the Inspector keeps a catalog and client config under ~/.mcp-inspector
        "HOME": str(home),
    }
    command = [str(install.node), str(install.inspector_entry), "--cli", "--format", "json"]
    for name, value in bridge_env.items():
        command += ["-e", f"{name}={value}"]
    command += [sys.executable, "-m", "mailbox_mcp", *method_args]
    with anyio.fail_after(120):
        done = await anyio.run_process(command, env=env, check=False)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"inspector exited {done.returncode}\n{stdout}\n{stderr}"
    try:
        answer = json.loads(stdout)
    except ValueError:
        pytest.fail(f"the inspector's output is not one JSON object:\n{stdout}\n{stderr}")
    assert isinstance(answer, dict) and "result" in answer, answer
    return answer["result"]


async def test_the_mcp_inspector_cli_lists_the_tools_and_sends_a_message(
    openclaw_install: OpenClawInstall, mailbox: ServerThread, me: Agent, tmp_path: Path
) -> None:
    peer = peer_of(mailbox, me, "peer")
    (tmp_path / "home").mkdir()
    # without OPENCLAW_GATEWAY_URL: pull mode, the tools alone
    env = bridge_env(mailbox, me, tmp_path / "state")
    env.pop("MAILBOX_LOG_LEVEL")

    listed = await inspector(openclaw_install, tmp_path / "home", env, "--method", "tools/list")
    names = [tool["name"] for tool in listed["tools"]]
    assert BRIDGE_TOOLS <= set(names), names
    async with bridge(env) as client:  # the first client sees the same tools
        ours = await client.list_tools()
    assert sorted(names) == sorted(tool.name for tool in ours.tools)
    send_tool = next(tool for tool in listed["tools"] if tool["name"] == "mailbox_send")
    assert {"to", "content"} <= set(send_tool["inputSchema"]["required"])

    result = await inspector(
        openclaw_install,
        tmp_path / "home",
        env,
        "--method",
        "tools/call",
        "--tool-name",
        "mailbox_send",
        "--tool-arg",
        f"to={peer.name}",
        "--tool-arg",
        "content=hello",
        "--tool-arg",
        "subject=hi",
    )
    assert result["isError"] is False, result
    sent = result["structuredContent"]
    assert sent["encrypted"] is False and sent["seq"] >= 1, sent

    [message] = peer.get("/inbox").json()["messages"]
    assert message["message_id"] == sent["message_id"]
    assert message["session_id"] == sent["session_id"]
    assert (message["from_agent"], message["subject"], message["content"]) == (
        me.name,
        "hi",
        "hello",
    )
