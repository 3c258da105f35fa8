"""Latency from `POST /messages/send` to the frame on the recipient's WebSocket.

    .venv/bin/python bench/send_to_frame.py                 # both backends, 1,000 messages
    .venv/bin/python bench/send_to_frame.py --backend postgresql --rate 200 --count 2000
    .venv/bin/python bench/send_to_frame.py --closed --concurrency 32   # throughput

Open loop (default): messages leave at `--rate` per second whatever the server
does, so queueing shows in the tail. Closed loop: `--concurrency` senders send
back to back; reports messages per second. The server runs as its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import websockets

from bench.common import (
    client,
    connect,
    cpu_seconds,
    database,
    register,
    server_process,
    summary,
)


async def run(url: str, pid: int, count: int, rate: float, closed: bool, concurrency: int) -> None:
    async with client(url) as http:
        recipient = await register(http, "recipient")
        senders = [
            await register(http, "sender") for _ in range(max(1, concurrency if closed else 1))
        ]
        for sender in senders:
            await connect(http, sender, recipient)
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        done = asyncio.Event()
        ws_url = url.replace("http://", "ws://") + "/ws"
        async with websockets.connect(ws_url, compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "api_key": recipient.api_key}))
            json.loads(await ws.recv())

            async def receive() -> None:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] != "message":
                        continue
                    body = frame["message"]["content"]
                    latencies.append((time.perf_counter() - sent_at[body]) * 1000)
                    if len(latencies) % 500 == 0:
                        await ws.send(
                            json.dumps({"type": "ack", "up_to_seq": frame["message"]["seq"]})
                        )
                    if len(latencies) == count:
                        done.set()
                        return

            receiver = asyncio.create_task(receive())
            errors = 0

            async def send_one(sender_index: int, i: int) -> None:
                nonlocal errors
                body = f"message {i}"
                sent_at[body] = time.perf_counter()
                response = await http.post(
                    "/messages/send",
                    json={"to": recipient.name, "content": body, "subject": "bench"},
                    headers=senders[sender_index].headers,
                )
                if response.status_code != 201:
                    errors += 1

            started = time.perf_counter()
            cpu_before = cpu_seconds(pid)
            if closed:
                per_sender = count // len(senders)
                count = per_sender * len(senders)

                async def loop(index: int) -> None:
                    for i in range(per_sender):
                        await send_one(index, index * per_sender + i)

                await asyncio.gather(*(loop(i) for i in range(len(senders))))
            else:
                tasks = []
                for i in range(count):
                    target = started + i / rate
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(send_one(0, i)))
                await asyncio.gather(*tasks)
            await asyncio.wait_for(done.wait(), 60)
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(pid) - cpu_before
            receiver.cancel()
    print(summary("  send -> frame", latencies))
    print(f"  {count / elapsed:.0f} msg/s over {elapsed:.2f} s, errors={errors}")
    print(f"  server CPU per message: {server_cpu / count * 1000:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop messages per second")
    parser.add_argument("--closed", action="store_true", help="closed loop: measure throughput")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        mode = f"closed loop x{args.concurrency}" if args.closed else f"open loop {args.rate:.0f}/s"
        print(f"{backend}, {mode}, {args.count} messages")
        with database(backend) as url, server_process(url) as (base, process):
            asyncio.run(
                run(base, process.pid, args.count, args.rate, args.closed, args.concurrency)
            )


if __name__ == "__main__":
    main()
