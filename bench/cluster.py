"""Two server processes on one PostgreSQL (contract §10): what crossing between them costs.

    .venv/bin/python -m bench.cluster                      # both measurements
    .venv/bin/python -m bench.cluster --count 2000 --rate 200 --revokes 50

1. Send → frame across processes: every sender posts to process A, every recipient
   listens on process B (its socket acknowledging each message, as the bridge
   does), open loop at `--rate`; the frame reaches B through the commit's
   notification and B's catch-up read. The same load with sender and recipient on
   one process runs beside it, for comparison.
2. Staleness of a revoke: a pair connected, a send through B (so B holds "connected"
   in its cache), the revoke through A, then sends through B until one answers
   403; the time from A's answer to B's first 403 (an upper bound: it includes one
   request's round trip).

Throughput with one process and two on the one port is `bench.send_to_frame
--backend postgresql --closed --workers 2`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from cryptography.fernet import Fernet

from bench.common import (
    BenchAgent,
    client,
    connect,
    database,
    percentile,
    register,
    server_process,
    summary,
)
from bench.cpu import load_average
from bench.rawws import RawWebSocket


class Tally:
    """Send → frame latencies, and an event once `expected` have arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.latencies: list[float] = []
        self.sent_at: dict[str, float] = {}
        self.complete = asyncio.Event()

    def arrived(self, content: str) -> None:
        started = self.sent_at.pop(content, None)
        if started is not None:
            self.latencies.append((time.perf_counter() - started) * 1000)
            if len(self.latencies) >= self.expected:
                self.complete.set()


async def listen(url: str, recipient: BenchAgent, tally: Tally) -> RawWebSocket:
    ws = await RawWebSocket.connect(url.replace("http://", "ws://") + "/ws")
    ws.send_text(json.dumps({"type": "auth", "api_key": recipient.api_key}))
    frame = json.loads(await ws.recv_text() or "{}")
    assert frame.get("type") == "auth_ok", frame

    async def read() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await read_frames()

    async def read_frames() -> None:
        while (text := await ws.recv_text()) is not None:
            frame = json.loads(text)
            if frame.get("type") != "message":
                continue
            message = frame["message"]
            tally.arrived(message["content"])
            ws.send_text(f'{{"type":"ack","up_to_seq":{message["seq"]}}}')

    asyncio.get_running_loop().create_task(read())
    return ws


async def send_to_frame(
    send_url: str, listen_url: str, count: int, rate: float, pairs: int
) -> list[float]:
    tally = Tally(count)
    async with client(send_url) as sender_http:
        agents = []
        for _ in range(pairs):
            a, b = await register(sender_http, "from"), await register(sender_http, "to")
            await connect(sender_http, a, b)
            agents.append((a, b))
        sockets = [await listen(listen_url, b, tally) for _, b in agents]

        async def send(i: int) -> None:
            a, b = agents[i % pairs]
            content = f"m{i}"
            tally.sent_at[content] = time.perf_counter()
            response = await sender_http.post(
                "/messages/send",
                json={"to": b.name, "content": content, "subject": "bench"},
                headers=a.headers,
            )
            response.raise_for_status()

        tasks = []
        start = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.complete.wait(), 10)
        for ws in sockets:
            await ws.close()
    return tally.latencies


async def revoke_staleness(url_a: str, url_b: str, revokes: int) -> list[float]:
    staleness: list[float] = []
    async with client(url_a) as on_a, client(url_b) as on_b:
        for _ in range(revokes):
            a, b = await register(on_a, "a"), await register(on_a, "b")
            await connect(on_a, a, b)
            body = {"to": b.name, "content": "x", "subject": "s"}
            (await on_b.post("/messages/send", json=body, headers=a.headers)).raise_for_status()
            revoked = await on_a.delete(f"/connections/{b.name}", headers=a.headers)
            revoked.raise_for_status()
            answered = time.perf_counter()
            while True:
                response = await on_b.post("/messages/send", json=body, headers=a.headers)
                if response.status_code == 403:
                    staleness.append((time.perf_counter() - answered) * 1000)
                    break
                response.raise_for_status()
    return staleness


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="messages per direction")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop messages per second")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--revokes", type=int, default=50)
    args = parser.parse_args()
    print(f"two server processes on one PostgreSQL; before: {load_average()}")
    key = Fernet.generate_key().decode()
    with (
        database("postgresql") as url,
        server_process(url, MAILBOX_ENCRYPTION_KEY=key) as (url_a, _),
        server_process(url, MAILBOX_ENCRYPTION_KEY=key) as (url_b, _),
    ):
        for label, listen_url in (("same process", url_a), ("across processes", url_b)):
            latencies = asyncio.run(
                send_to_frame(url_a, listen_url, args.count, args.rate, args.pairs)
            )
            print(f"  send -> frame, {label}, open loop {args.rate:.0f}/s, ack each:")
            print(f"    {summary('latency', latencies)}")
            if len(latencies) < args.count:
                print(f"    MISSING: {args.count - len(latencies)} frames never arrived")
        staleness = asyncio.run(revoke_staleness(url_a, url_b, args.revokes))
        print(
            f"  revoke on A -> 403 on B, {len(staleness)} revokes: "
            f"p50={percentile(staleness, 50):.2f} ms p99={percentile(staleness, 99):.2f} ms "
            f"max={max(staleness):.2f} ms"
        )
    print(f"  after: {load_average()}")


if __name__ == "__main__":
    main()
