"""Memory per idle WebSocket, and catch-up of pending messages on reconnect.

    .venv/bin/python -m bench.ws_capacity                  # 5,000 sockets, 1,000 pending
    .venv/bin/python -m bench.ws_capacity --sockets 1000 --backend postgresql

Opens N authenticated, idle WebSockets to a `mailbox-server` process and
reports the server's resident memory per socket; then queues M messages for
one agent while it is offline and times its reconnect until the last one
arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import websockets

from bench.common import client, connect, database, register, server_process


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def idle_sockets(url: str, pid: int, count: int) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with client(url) as http:
        agents = []
        for i in range(count):
            agents.append(await register(http, "idle"))
            if (i + 1) % 1000 == 0:
                print(f"  registered {i + 1}")
    before = rss_kib(pid)
    sockets = []
    try:
        for i, agent in enumerate(agents):
            ws = await websockets.connect(ws_url, compression=None, open_timeout=30)
            await ws.send(json.dumps({"type": "auth", "api_key": agent.api_key}))
            await ws.recv()
            sockets.append(ws)
            if (i + 1) % 1000 == 0:
                print(f"  connected {i + 1}")
        await asyncio.sleep(2)  # let the server settle before reading its memory
        after = rss_kib(pid)
        print(
            f"  {count} idle sockets: server RSS +{(after - before) / 1024:.1f} MiB, "
            f"{(after - before) / count:.1f} KiB per socket"
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def catch_up(url: str, pending: int) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with client(url) as http:
        sender, recipient = await register(http, "sender"), await register(http, "offline")
        await connect(http, sender, recipient)
        for i in range(pending):
            response = await http.post(
                "/messages/send",
                json={"to": recipient.name, "content": f"pending {i}", "subject": "catch-up"},
                headers=sender.headers,
            )
            response.raise_for_status()
    started = time.perf_counter()
    async with websockets.connect(ws_url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "api_key": recipient.api_key}))
        await ws.recv()
        received = 0
        while received < pending:
            frame = json.loads(await ws.recv())
            received += frame["type"] == "message"
    print(f"  catch-up of {pending} pending messages: {time.perf_counter() - started:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--pending", type=int, default=1000)
    args = parser.parse_args()
    print(f"{args.backend}: {args.sockets} idle sockets, {args.pending} pending messages")
    # All the sockets come from this one address: lift the per-address cap above them.
    cap = {"MAILBOX_WS_MAX_SOCKETS_PER_CLIENT": str(args.sockets + 16)}
    with database(args.backend) as url, server_process(url, **cap) as (base, process):
        asyncio.run(idle_sockets(base, process.pid, args.sockets))
        asyncio.run(catch_up(base, args.pending))


if __name__ == "__main__":
    main()
