"""Server memory with WebSockets that never read (issue 13), run by hand.

    .venv/bin/python -m bench.ws_memory                        # 50 sockets, 1,000 × 43 KB each
    .venv/bin/python -m bench.ws_memory --backend postgresql
    .venv/bin/python -m bench.ws_memory --sockets 8 --pending 500 --hold 80

Queues `--pending` messages of `--size` bytes for each of `--sockets` agents,
then opens one WebSocket per agent that authenticates and never reads again
(a 4 KiB receive buffer, as a stuck or hostile client has). Samples the
server's resident memory every 0.25 s for `--hold` seconds (past the send
deadline, `MAILBOX_WS_SEND_TIMEOUT`, after which the server lets them go),
prints baseline, peak and end, and how each socket ended (a close code, cut
off, or still open); `--rounds` does it again with the same agents, to show
the memory is reused, not grown. Then one agent reconnects with a reading
client: every message must come back.

What bounds the peak, per socket: one backlog page (`MAILBOX_WS_BACKLOG_PAGE_BYTES`
of stored, encrypted content, held while decrypted: about 1.75 times that at
once), the frame being sent and uvicorn's write buffer (64 KiB plus a frame),
and the live queue (`MAILBOX_WS_SEND_QUEUE_BYTES`, empty here: nothing is sent
while they are connected).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import websockets

from bench.common import client, connect, database, register, server_process
from bench.rawhttp import RawClient
from bench.rawws import RawWebSocket
from bench.ws_capacity import rss_kib

SENDERS_IN_FLIGHT = 32


async def queue_messages(url: str, sockets: int, pending: int, size: int) -> list[str]:
    """Register the agents and queue the messages; the recipients' API keys."""
    async with client(url) as http:
        sender = await register(http, "sender")
        recipients = [await register(http, "stuck") for _ in range(sockets)]
        for recipient in recipients:
            await connect(http, sender, recipient)
    raw = RawClient(url)
    bodies = [
        json.dumps({"to": r.name, "content": "x" * size, "subject": "memory"}).encode()
        for r in recipients
    ]
    todo = [(i, n) for n in range(pending) for i in range(sockets)]
    started = time.perf_counter()

    async def send_some(worker: int) -> None:
        for i, _ in todo[worker::SENDERS_IN_FLIGHT]:
            status, body = await raw.post_json("/messages/send", bodies[i], sender.headers)
            if status != 201:
                raise RuntimeError(f"send answered {status}: {body[:200]!r}")

    try:
        await asyncio.gather(*(send_some(w) for w in range(SENDERS_IN_FLIGHT)))
    finally:
        await raw.close()
    print(f"  queued {len(todo)} messages in {time.perf_counter() - started:.0f} s")
    return [r.api_key for r in recipients]


async def stuck_sockets(url: str, pid: int, keys: list[str], hold: float) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"
    before = rss_kib(pid)
    sockets = []
    for key in keys:
        ws = await RawWebSocket.connect(ws_url, receive_buffer=4096)
        ws.send_text(json.dumps({"type": "auth", "api_key": key}))
        first = json.loads(await ws.recv_text() or "{}")
        if first.get("type") != "auth_ok":
            raise RuntimeError(f"no auth_ok: {first}")
        sockets.append(ws)  # and never read again until the end
    peak, peak_at, started = before, 0.0, time.monotonic()
    while (elapsed := time.monotonic() - started) < hold:
        rss = rss_kib(pid)
        if rss > peak:
            peak, peak_at = rss, elapsed
        await asyncio.sleep(0.25)
    end = rss_kib(pid)
    print(
        f"  {len(keys)} sockets that never read: server RSS {before / 1024:.0f} MiB before, "
        f"peak +{(peak - before) / 1024:.1f} MiB ({(peak - before) / len(keys):.0f} KiB per "
        f"socket) at {peak_at:.0f} s, +{(end - before) / 1024:.1f} MiB after {hold:.0f} s"
    )
    endings: Counter[str] = Counter()
    for ws in sockets:
        endings[await _ending(ws)] += 1
        await ws.close()
    print(f"  how the sockets ended, read after {hold:.0f} s: {dict(endings)}")


async def _ending(ws: RawWebSocket) -> str:
    """What a stuck socket finds once it reads: a close code, cut off, or still open."""
    try:
        async with asyncio.timeout(10):
            while await ws.recv_text() is not None:
                pass
    except TimeoutError:
        return "still open"
    except (OSError, asyncio.IncompleteReadError):
        return "cut off"
    return f"close {ws.close_code}"


async def replayed(url: str, key: str, pending: int) -> None:
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "api_key": key}))
        await ws.recv()
        seqs = []
        async with asyncio.timeout(60):
            while len(seqs) < pending:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message":
                    seqs.append(frame["message"]["seq"])
    assert seqs == list(range(1, pending + 1)), "a message went missing"
    print(f"  a stuck agent reconnected and got all {pending} messages, in order")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--size", type=int, default=43_000)
    parser.add_argument("--hold", type=float, default=45, help="seconds to watch each round")
    parser.add_argument(
        "--rounds", type=int, default=2, help="the same agents get stuck again: memory reused?"
    )
    parser.add_argument("--page-bytes", type=int, help="MAILBOX_WS_BACKLOG_PAGE_BYTES")
    args = parser.parse_args()
    env = {} if args.page_bytes is None else {"MAILBOX_WS_BACKLOG_PAGE_BYTES": str(args.page_bytes)}
    print(
        f"{args.backend}: {args.sockets} sockets that never read, "
        f"{args.pending} pending messages of {args.size} bytes each, {env or 'default settings'}"
    )
    with database(args.backend) as url, server_process(url, **env) as (base, process):
        keys = asyncio.run(queue_messages(base, args.sockets, args.pending, args.size))
        for _ in range(args.rounds):
            asyncio.run(stuck_sockets(base, process.pid, keys, args.hold))
        asyncio.run(replayed(base, keys[0], args.pending))


if __name__ == "__main__":
    main()
