"""Send → recipient's frame, on the workload the bridge makes: many pairs, every message acked.

    .venv/bin/python -m bench.send_to_frame                  # both backends, open loop 200/s
    .venv/bin/python -m bench.send_to_frame --closed --concurrency 32 --count 8000 --compare
    .venv/bin/python -m bench.send_to_frame --pairs 1 --ack-every 500   # the old workload

`--pairs` sender→recipient pairs (default 20), each recipient on its own WebSocket,
acknowledging every message as soon as its frame arrives, as the bridge does
(`--ack-every N` acks every Nth message per recipient; 0 never acks). `--compare`
runs the same load without acks too, rounds interleaved on one server, and prints
the ratio. Open loop (default): messages leave at `--rate` per second whatever the
server does, so queueing shows in the tail. Closed loop: `--concurrency` senders
send back to back. The server runs as its own process with the pair limit off;
CPU is reported per message for the server, the database (the backends of the
benchmark's database and PostgreSQL's background processes), the load client,
and what the rest of the machine (other workers) used meanwhile. The load client
speaks HTTP and WebSocket through lean raw-socket clients (`bench.rawhttp`,
`bench.rawws`): the frames are the bridge's, the client's CPU is not httpx's
or websockets'.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx

from bench.common import (
    BenchAgent,
    client,
    connect,
    database,
    percentile,
    postgres_pids,
    register,
    server_process,
    summary,
)
from bench.cpu import CpuMeter, CpuUse, load_average
from bench.rawhttp import RawClient
from bench.rawws import RawWebSocket


@dataclass
class Load:
    database_url: str
    count: int
    rate: float
    closed: bool
    concurrency: int
    pairs: int
    # Each message opens a conversation (a subject, a new session), or each pair opens
    # one before the run and every message continues it (session_id, as replies do).
    new_sessions: bool = True


@dataclass
class RoundResult:
    ack_every: int
    count: int
    elapsed: float
    latencies: list[float]
    errors: int
    cpu: CpuUse
    unacked_after: int = 0

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed


@dataclass
class Receiver:
    recipient: BenchAgent
    ws: RawWebSocket
    received: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def describe_acks(ack_every: int) -> str:
    if ack_every == 0:
        return "no acks"
    return "ack every message" if ack_every == 1 else f"ack every {ack_every} messages"


async def make_pairs(http: httpx.AsyncClient, n: int) -> list[tuple[BenchAgent, BenchAgent]]:
    pairs = []
    for _ in range(n):
        sender, recipient = await register(http, "sender"), await register(http, "recipient")
        await connect(http, sender, recipient)
        pairs.append((sender, recipient))
    return pairs


async def open_conversation(http: httpx.AsyncClient, sender: BenchAgent, to: BenchAgent) -> str:
    """A session between the pair, its first message already acknowledged."""
    sent = await http.post(
        "/messages/send",
        json={"to": to.name, "content": "hello", "subject": "bench"},
        headers=sender.headers,
    )
    sent.raise_for_status()
    seq = sent.json()["seq"]
    acked = await http.post("/inbox/ack", json={"up_to_seq": seq}, headers=to.headers)
    acked.raise_for_status()
    return str(sent.json()["session_id"])


async def run_round(
    url: str, meter: CpuMeter, load: Load, ack_every: int, label: str
) -> RoundResult:
    async with client(url) as http:
        pairs = await make_pairs(http, load.pairs)
        sessions = (
            None
            if load.new_sessions
            else [await open_conversation(http, sender, to) for sender, to in pairs]
        )
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    ws_url = url.replace("http://", "ws://") + "/ws"
    receivers: list[Receiver] = []
    raw = RawClient(url)
    errors = 0
    # The closed loop sends the same number per sender: the count rounds down to fit.
    count = load.count - load.count % load.concurrency if load.closed else load.count

    async def receive(receiver: Receiver) -> None:
        while (frame_text := await receiver.ws.recv_text()) is not None:
            frame = json.loads(frame_text)
            if frame["type"] != "message":
                continue
            message = frame["message"]
            latencies.append((time.perf_counter() - sent_at[message["content"]]) * 1000)
            receiver.received += 1
            if ack_every and receiver.received % ack_every == 0:
                # As the bridge acks, once the message is handed on: one frame per message.
                receiver.ws.send_text(f'{{"type": "ack", "up_to_seq": {message["seq"]}}}')
            if len(latencies) == count:
                done.set()

    async def send_one(pair_index: int, i: int) -> None:
        nonlocal errors
        sender, recipient = pairs[pair_index]
        content = f"{label}-{i}"
        fields = {"subject": "bench"} if sessions is None else {"session_id": sessions[pair_index]}
        body = json.dumps({"to": recipient.name, "content": content, **fields})
        sent_at[content] = time.perf_counter()
        status, _ = await raw.post_json("/messages/send", body.encode(), sender.headers)
        if status != 201:
            errors += 1

    try:
        for _, recipient in pairs:
            ws = await RawWebSocket.connect(ws_url)
            ws.send_text(json.dumps({"type": "auth", "api_key": recipient.api_key}))
            json.loads(await ws.recv_text() or "{}")
            receiver = Receiver(recipient, ws)
            receiver.task = asyncio.create_task(receive(receiver))
            receivers.append(receiver)
        database_pids = await postgres_pids(load.database_url)
        started = time.perf_counter()
        meter.start(started, database_pids)
        if load.closed:
            per_sender = count // load.concurrency

            async def loop(index: int) -> None:
                for i in range(per_sender):
                    await send_one(index % len(pairs), index * per_sender + i)

            await asyncio.gather(*(loop(i) for i in range(load.concurrency)))
        else:
            tasks = []
            for i in range(count):
                delay = started + i / load.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send_one(i % len(pairs), i)))
            await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), 120)
        finished = time.perf_counter()
        cpu = meter.stop(finished, await postgres_pids(load.database_url))
    finally:
        for receiver in receivers:
            if receiver.task is not None:
                receiver.task.cancel()
            await receiver.ws.close()
        await raw.close()
    result = RoundResult(ack_every, count, finished - started, latencies, errors, cpu)
    if ack_every:
        result.unacked_after = await unacknowledged(url, [r for _, r in pairs])
    return result


async def unacknowledged(url: str, recipients: list[BenchAgent]) -> int:
    """Messages still not acknowledged once the sockets closed (a check that acks took)."""
    total = 0
    async with client(url) as http:
        for recipient in recipients:
            answer = await http.get("/inbox", params={"limit": 500}, headers=recipient.headers)
            total += len(answer.json()["messages"])
    return total


def report(result: RoundResult) -> None:
    print(
        f"    {describe_acks(result.ack_every)}: {result.throughput:.0f} msg/s over "
        f"{result.elapsed:.2f} s, errors={result.errors}"
    )
    print("  " + summary("    send -> frame", result.latencies))
    print(f"      {result.cpu.per_message(result.count)}")
    if result.ack_every:
        print(f"      unacknowledged after the sockets closed: {result.unacked_after}")


def compare(results: list[RoundResult], modes: list[int]) -> None:
    by_mode = {mode: [r for r in results if r.ack_every == mode] for mode in modes}
    for mode, runs in by_mode.items():
        print(
            f"  {describe_acks(mode)}: median {statistics.median(r.throughput for r in runs):.0f}"
            f" msg/s, p99 median {statistics.median(percentile(r.latencies, 99) for r in runs):.2f}"
            f" ms, server CPU/msg median "
            f"{statistics.median(r.cpu.server / r.count * 1000 for r in runs):.3f} ms"
        )
    if len(modes) == 2:
        acked, plain = by_mode[modes[0]], by_mode[modes[1]]
        ratios = [a.throughput / p.throughput for a, p in zip(acked, plain, strict=True)]
        listed = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  throughput with acks ÷ without, per round: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--count", type=int, default=2000, help="messages per round")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop messages per second")
    parser.add_argument("--closed", action="store_true", help="closed loop: measure throughput")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop senders")
    parser.add_argument("--pairs", type=int, default=20, help="sender→recipient pairs")
    parser.add_argument(
        "--ack-every",
        type=int,
        default=1,
        help="each recipient acks every Nth message (1: every message, as the bridge; 0: never)",
    )
    parser.add_argument(
        "--compare", action="store_true", help="also run without acks, interleaved, same server"
    )
    parser.add_argument("--rounds", type=int, default=None, help="default: 2 with --compare")
    parser.add_argument(
        "--sessions",
        choices=["new", "continue"],
        default="new",
        help="each message opens a conversation (new), or continues its pair's (continue)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the one port (PostgreSQL; the kernel spreads connections)",
    )
    args = parser.parse_args()
    if args.workers > 1 and args.backend != "postgresql":
        parser.error("--workers needs --backend postgresql")
    modes = [args.ack_every, 0] if args.compare and args.ack_every else [args.ack_every]
    rounds = args.rounds or (2 if args.compare else 1)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        shape = f"open loop {args.rate:.0f}/s"
        if args.closed:
            shape = f"closed loop x{args.concurrency}"
        print(
            f"{backend}, {shape}, {args.pairs} pairs, {args.count} messages per round, "
            f"sessions: {args.sessions}, server processes: {args.workers}"
        )
        print(f"  before: {load_average()}")
        results = []
        workers = {"MAILBOX_WORKERS": str(args.workers)}
        with database(backend) as url, server_process(url, **workers) as (base, process):
            meter = CpuMeter(process.pid)
            load = Load(
                url,
                args.count,
                args.rate,
                args.closed,
                args.concurrency,
                args.pairs,
                new_sessions=args.sessions == "new",
            )
            for number in range(rounds):
                # Alternate the order, so neither mode always runs on the warmer server.
                order = modes if number % 2 == 0 else list(reversed(modes))
                print(f"  round {number + 1}")
                for mode in order:
                    label = f"r{number}m{mode}"
                    result = asyncio.run(run_round(base, meter, load, mode, label))
                    report(result)
                    results.append(result)
        print(f"  after: {load_average()}")
        with contextlib.suppress(statistics.StatisticsError):
            compare(results, modes)


if __name__ == "__main__":
    main()
