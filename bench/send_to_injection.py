"""Latency from `POST /messages/send` to OpenClaw receiving `sessions_send`.

    .venv/bin/python -m bench.send_to_injection               # 1,000 messages, 50/s
    .venv/bin/python -m bench.send_to_injection --count 2000 --rate 100

The whole path runs for real: `mailbox-server` (SQLite) as its own process,
the bridge as the LLM host starts it (`python -m mailbox_mcp` over stdio,
through the MCP SDK's client), and a loopback gateway that speaks OpenClaw's
wire format and stamps the moment each `sessions_send` arrives. Also prints
the bridge's resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import client, connect, database, register, server_process, summary
from tests.fakes.openclaw_gateway import FakeGateway

TOKEN = "bench-gateway-token"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bridge_pid() -> int | None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mailbox_mcp" in cmdline and b"-m" in cmdline:
                return int(proc.name)
    return None


async def run(url: str, count: int, rate: float, gateway: FakeGateway) -> None:
    async with client(url) as http:
        me = await register(http, "bridge")
        peer = await register(http, "peer")
        await connect(http, peer, me)
        with tempfile.TemporaryDirectory() as state:
            env = {
                "MAILBOX_SERVER_URL": url,
                "MAILBOX_API_KEY": me.api_key,
                "MAILBOX_STATE_DIR": state,
                "OPENCLAW_GATEWAY_URL": gateway.url,
                "OPENCLAW_GATEWAY_TOKEN": TOKEN,
                "MAILBOX_LOG_LEVEL": "WARNING",
            }
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "mailbox_mcp"], env=env
            )
            async with Client(params) as bridge:
                # Warm up: the first message creates the per-peer session.
                await bridge.call_tool("mailbox_status", {})
                await send(http, peer, me.name, "warm-up")
                await asyncio.to_thread(gateway.wait_for_injections, 1, 30)
                sent_at: dict[str, float] = {}
                started = time.time()
                for i in range(count):
                    delay = started + i / rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    body = f"bench-{i}"
                    sent_at[body] = time.time()
                    await send(http, peer, me.name, body)
                injections = await asyncio.to_thread(gateway.wait_for_injections, count + 1, 120)
                pid = bridge_pid()
                memory = rss_mib(pid) if pid else float("nan")
    latencies = []
    for injection in injections[1:]:
        marker = next(line for line in injection.message.splitlines() if line.startswith("bench-"))
        latencies.append((injection.ts - sent_at[marker]) * 1000)
    print(summary("  send -> sessions_send received", latencies))
    print(f"  bridge RSS after the run: {memory:.1f} MiB")


async def send(http: httpx.AsyncClient, sender: object, to: str, content: str) -> None:
    response = await http.post(
        "/messages/send",
        json={"to": to, "content": content, "subject": "bench"},
        headers=sender.headers,  # type: ignore[attr-defined]
    )
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    print(f"send -> injection, {args.count} messages at {args.rate:.0f}/s")
    with (
        database("sqlite") as url,
        server_process(url) as (base, _),
        FakeGateway(token=TOKEN) as gw,
    ):
        asyncio.run(run(base, args.count, args.rate, gw))


if __name__ == "__main__":
    main()
