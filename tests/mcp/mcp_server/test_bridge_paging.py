"""The inbox and history tools reach every message when the server's pages are short.

The server ends a page at MAILBOX_MAX_PAGE_BYTES as well as at `limit`, so a page
may hold fewer messages than asked for while more wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Agent, connect_agents, register
from tests.mcp.conftest import bridge, bridge_env, send
from tests.servers import ServerThread, server_settings, sqlite_url

pytestmark = pytest.mark.anyio

KIB = 1024
COUNT = 4


@pytest.fixture
def short_pages(tmp_path: Path) -> Iterator[ServerThread]:
    settings = server_settings(sqlite_url(tmp_path / "server"), MAILBOX_MAX_PAGE_BYTES=16 * KIB)
    with ServerThread(settings) as running:
        yield running


def _big(i: int) -> str:
    # One per page: each is larger than the page budget.
    return f"msg-{i} " + "x" * (20 * KIB)


async def _send_all(peer: Agent, me: Agent) -> str:
    first = await send(peer, me, _big(0), subject="Long")
    for i in range(1, COUNT):
        await send(peer, me, _big(i), session_id=first["session_id"])
    return first["session_id"]


async def test_the_inbox_tool_reads_every_message_across_short_pages(
    short_pages: ServerThread, tmp_path: Path
) -> None:
    me, peer = register(short_pages.url, "me"), register(short_pages.url, "peer")
    connect_agents(me, peer)
    await _send_all(peer, me)
    seen: list[str] = []
    async with bridge(bridge_env(short_pages, me, tmp_path)) as client:
        for _ in range(COUNT + 1):
            result = await client.call_tool("mailbox_inbox", {"limit": 20})
            assert result.structured_content is not None, result.content
            if not result.structured_content["messages"]:
                break
            seen.extend(
                f"msg-{i}"
                for m in result.structured_content["messages"]
                for i in range(COUNT)
                if f"msg-{i} " in m["text"]
            )
    assert seen == [f"msg-{i}" for i in range(COUNT)]


async def test_the_history_tool_pages_back_to_the_first_message(
    short_pages: ServerThread, tmp_path: Path
) -> None:
    me, peer = register(short_pages.url, "me"), register(short_pages.url, "peer")
    connect_agents(me, peer)
    session_id = await _send_all(peer, me)
    seen: list[str] = []
    arguments: dict[str, object] = {"session_id": session_id, "limit": 20}
    async with bridge(bridge_env(short_pages, me, tmp_path)) as client:
        for _ in range(COUNT + 1):
            result = await client.call_tool("mailbox_history", arguments)
            data = result.structured_content
            assert data is not None, result.content
            page = [
                f"msg-{i}"
                for m in data["messages"]
                for i in range(COUNT)
                if f"msg-{i} " in m["text"]
            ]
            seen = page + seen
            if data["older_before"] is None:
                break
            arguments["before"] = data["older_before"]
    assert seen == [f"msg-{i}" for i in range(COUNT)]
