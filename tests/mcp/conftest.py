"""Bridge tests: a real server (SQLite), the real bridge over stdio, a fake OpenClaw gateway."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import Agent, connect_agents, register
from tests.servers import ServerThread
from tests.waiting import NotInTime, wait_until, wait_until_async

GATEWAY_TOKEN = "gateway-test-token"


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway(token=GATEWAY_TOKEN) as running:
        yield running


@pytest.fixture
def peers(mailbox: ServerThread) -> tuple[Agent, Agent]:
    """Two connected agents: `me` runs the bridge, `peer` writes to it."""
    me, peer = register(mailbox.url, "me"), register(mailbox.url, "peer")
    connect_agents(me, peer)
    return me, peer


def bridge_env(
    server: ServerThread,
    agent: Agent,
    state_dir: Path,
    gateway: FakeGateway | None = None,
    **extra: str,
) -> dict[str, str]:
    env = {
        "MAILBOX_SERVER_URL": server.url,
        "MAILBOX_API_KEY": agent.api_key,
        "MAILBOX_STATE_DIR": str(state_dir),
        "MAILBOX_RETRY_INITIAL_SECONDS": "0.05",
        "MAILBOX_RETRY_MAX_SECONDS": "0.3",
        "MAILBOX_LOG_LEVEL": "DEBUG",
    }
    if gateway is not None:
        env["OPENCLAW_GATEWAY_URL"] = gateway.url
        env["OPENCLAW_GATEWAY_TOKEN"] = GATEWAY_TOKEN
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def bridge(env: dict[str, str]) -> AsyncIterator[Client]:
    """The bridge as the LLM host runs it: `python -m mailbox_mcp` over stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "mailbox_mcp"], env=env)
    async with Client(params, read_timeout_seconds=30) as client:
        yield client


async def send(sender: Agent, to: Agent, content: str, **fields: Any) -> dict[str, Any]:
    """Send from outside the bridge (the peer's side), without blocking the event loop."""
    body = {"to": to.name, "content": content, **fields}
    if "session_id" not in fields:
        body.setdefault("subject", "test")
    async with httpx.AsyncClient(base_url=str(sender.http.base_url), timeout=10) as http:
        response = await http.post("/messages/send", json=body, headers=sender.auth)
    assert response.status_code == 201, response.text
    return response.json()


def landed(gateway: FakeGateway) -> list[str]:
    """Which messages landed, by the content marker each test message carries."""
    return [
        line
        for i in gateway.injections
        for line in i.message.splitlines()
        if line.startswith("msg-")
    ]


async def status_until(
    client: Client, predicate: Callable[[dict[str, Any]], bool], within: float = 10
) -> dict[str, Any]:
    """Ask `mailbox_status` (the only window into the bridge process) until it holds."""

    async def status() -> dict[str, Any]:
        result = await client.call_tool("mailbox_status", {})
        assert result.structured_content is not None
        return result.structured_content

    return await wait_until_async(status, predicate, within=within, what="mailbox_status to match")


REPLY_LINE = re.compile(r'mailbox_reply\(reply_token="([A-Za-z0-9_-]+)", content="\.\.\."\)')


def reply_token(injected: str) -> str:
    """The reply handle in an injected envelope's HOW TO REPLY line."""
    [token] = REPLY_LINE.findall(injected)
    return token


def run_owner(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The owner's `mailbox-mcp ARGS`, which must never print a traceback."""
    result = subprocess.run(
        [MAILBOX_MCP, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


MAILBOX_MCP = str(Path(sys.executable).parent / "mailbox-mcp")


@contextlib.contextmanager
def running(*args: str, env: dict[str, str], ready_url: str | None = None) -> Iterator[None]:
    """``mailbox-mcp ARGS`` as its own process (``serve``, ``listen``), stopped on exit;
    with ``ready_url``, once that URL answers. Its stderr must hold no traceback."""
    process = subprocess.Popen(
        [MAILBOX_MCP, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if ready_url is not None:

            def answers() -> bool:
                try:
                    httpx.get(ready_url, timeout=1)
                except httpx.HTTPError:
                    if process.poll() is not None:
                        raise RuntimeError(process.communicate()[1]) from None
                    return False
                return True

            try:
                wait_until(answers, within=20, what=f"{ready_url} to answer")
            except NotInTime:
                process.terminate()
                raise RuntimeError(process.communicate()[1]) from None
        yield
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
        assert "Traceback" not in err, err
