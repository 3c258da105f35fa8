"""`mailbox-mcp serve` (one process: listener + MCP over HTTP) and `mailbox-mcp listen`."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent
from tests.mcp.conftest import MAILBOX_MCP, bridge_env, landed, running, send
from tests.servers import ServerThread, free_port

pytestmark = pytest.mark.anyio

TOKEN = "serve-test-token"


@contextlib.asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP, as OpenClaw's `url` + `headers` entry makes one."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def test_serve_listens_from_the_start_and_serves_every_session_with_a_token(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {**bridge_env(mailbox, me, tmp_path, gateway), "MAILBOX_SERVE_TOKEN": TOKEN}
    with running("serve", "--port", str(port), env=env, ready_url=url):
        # No MCP session yet, and the message is injected all the same.
        await send(peer, me, "msg-before-any-session")
        await gateway.await_injections(1, timeout=15)

        async with httpx.AsyncClient() as http:
            assert (await http.post(url, json={})).status_code == 401
            wrong = await http.post(url, json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"

        async with _client(url, TOKEN) as one, _client(url, TOKEN) as two:
            tools = {t.name for t in (await one.list_tools()).tools}
            assert {"mailbox_send", "mailbox_status"} <= tools
            status = (await two.call_tool("mailbox_status", {})).structured_content
            sent = await one.call_tool(
                "mailbox_send", {"to": peer.name, "content": "from serve", "subject": "hi"}
            )
        assert status is not None and status["listener"] == "connected"
        assert me.api_key not in str(status)
        assert not sent.is_error
    assert landed(gateway) == ["msg-before-any-session"]
    assert [m["content"] for m in peer.get("/inbox").json()["messages"]] == ["from serve"]


async def test_serve_makes_and_keeps_a_token_when_none_is_given(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, _ = peers
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with running(
        "serve", "--port", str(port), env=bridge_env(mailbox, me, tmp_path, gateway), ready_url=url
    ):
        token_file = tmp_path / "serve_token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        async with _client(url, token_file.read_text().strip()) as client:
            assert (await client.list_tools()).tools


async def test_the_entry_config_openclaw_serve_prints_reaches_serve(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, _ = peers
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = bridge_env(mailbox, me, tmp_path, gateway)
    printed = await anyio.run_process(
        [MAILBOX_MCP, "config", "openclaw", "--serve", url, "--include-key"], env=env, check=False
    )
    assert printed.returncode == 0, printed.stderr.decode()
    entry = json.loads(printed.stdout)["mcp"]["servers"]["mailbox"]
    with running("serve", "--port", str(port), env=env, ready_url=url):
        # As OpenClaw uses the entry: its url, with its headers.
        async with httpx2.AsyncClient(headers=entry["headers"], timeout=30) as http:
            transport = streamable_http_client(entry["url"], http_client=http)
            async with Client(transport) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
    assert "mailbox_send" in tools


async def test_listen_alone_injects_messages(
    mailbox: ServerThread, gateway: FakeGateway, peers: tuple[Agent, Agent], tmp_path: Path
) -> None:
    me, peer = peers
    with running("listen", env=bridge_env(mailbox, me, tmp_path, gateway)):
        await send(peer, me, "msg-listen")
        await gateway.await_injections(1, timeout=15)
    assert landed(gateway) == ["msg-listen"]


def test_listen_without_a_gateway_says_what_to_set(mailbox: ServerThread, tmp_path: Path) -> None:
    env = {
        "MAILBOX_SERVER_URL": mailbox.url,
        "MAILBOX_STATE_DIR": str(tmp_path),
        "MAILBOX_API_KEY": "x",
    }
    result = subprocess.run(
        [MAILBOX_MCP, "listen"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "OPENCLAW_GATEWAY_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "listen"])
def test_a_systemd_user_unit_runs_the_command_without_secrets(
    mailbox: ServerThread, peers: tuple[Agent, Agent], tmp_path: Path, command: str
) -> None:
    me, _ = peers
    env = bridge_env(mailbox, me, tmp_path, OPENCLAW_GATEWAY_TOKEN="gw-secret")
    unit = subprocess.run(
        [MAILBOX_MCP, "config", f"systemd-{command}"], env=env, capture_output=True, text=True
    )
    assert unit.returncode == 0, unit.stderr
    exec_start = next(line for line in unit.stdout.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(f"-P -m mailbox_mcp {command}")
    assert f"Environment=MAILBOX_STATE_DIR={tmp_path}" in unit.stdout
    assert "Restart=on-failure" in unit.stdout and "[Install]" in unit.stdout
    assert me.api_key not in unit.stdout and "gw-secret" not in unit.stdout
    # the dedicated setup is the default: the peer sessions belong to agent `mailbox`
    assert "Environment=OPENCLAW_AGENT_ID=mailbox" in unit.stdout.splitlines()
    # The command the unit runs exists: `python -m mailbox_mcp <command> --help` answers.
    python = exec_start.removeprefix("ExecStart=").split()[0]
    helped = subprocess.run(
        [python, "-P", "-m", "mailbox_mcp", command, "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "usage" in helped.stdout


@pytest.mark.parametrize(
    ("flags", "agent_id", "expected"),
    [
        ([], None, "mailbox"),
        (["--plain"], None, "main"),
        ([], "peers", "peers"),
        ([], "main", "mailbox"),
        (["--plain"], "peers", "peers"),
    ],
)
def test_the_systemd_unit_names_the_agent_that_owns_the_peer_sessions(
    tmp_path: Path, flags: list[str], agent_id: str | None, expected: str
) -> None:
    env = {"MAILBOX_STATE_DIR": str(tmp_path), "OPENCLAW_GATEWAY_URL": "http://127.0.0.1:18789"}
    if agent_id is not None:
        env["OPENCLAW_AGENT_ID"] = agent_id
    unit = subprocess.run(
        [MAILBOX_MCP, "config", "systemd-serve", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stderr
    lines = [line for line in unit.stdout.splitlines() if "OPENCLAW_AGENT_ID" in line]
    assert lines == [f"Environment=OPENCLAW_AGENT_ID={expected}"]


@pytest.mark.parametrize("kept", ["", "\n", "  \t\n"], ids=["empty", "newline", "blank"])
def test_serve_refuses_to_start_with_an_empty_token_file_and_says_which(
    tmp_path: Path, kept: str
) -> None:
    (tmp_path / "serve_token").write_text(kept)
    env = {
        "MAILBOX_SERVER_URL": "http://127.0.0.1:9",
        "MAILBOX_STATE_DIR": str(tmp_path),
        "MAILBOX_API_KEY": "x",
    }
    result = subprocess.run(
        [MAILBOX_MCP, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert str(tmp_path / "serve_token") in result.stderr and "empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "serve_token").read_text() == kept  # the person decides, not us


def test_config_openclaw_serve_says_the_same_of_an_empty_token_file(tmp_path: Path) -> None:
    (tmp_path / "serve_token").write_text("\n")
    env = {"MAILBOX_STATE_DIR": str(tmp_path), "OPENCLAW_GATEWAY_URL": "http://127.0.0.1:9"}
    serve_url = "http://127.0.0.1:1/mcp"
    result = subprocess.run(
        [MAILBOX_MCP, "config", "openclaw", "--plain", "--serve", serve_url, "--include-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is empty" in result.stderr
