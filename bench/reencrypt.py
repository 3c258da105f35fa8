"""`mailbox-server reencrypt` over 100,000 messages; on PostgreSQL with the server up.

    .venv/bin/python -m bench.reencrypt --backend sqlite
    .venv/bin/python -m bench.reencrypt --backend postgresql            # /health p99 too
    .venv/bin/python -m bench.reencrypt --backend postgresql --nice 19     # reencrypt niced

The database is made by a real server under the old key (two agents, a
connection, one message, so every table has real rows), then the messages are
bulk-inserted under the old key (sends would measure the send path, not this):
contents of 300 bytes, every other one with a correlation id. Then the keys
become "new,old" and `python -m server reencrypt` runs as its own process,
timed from start to exit. On PostgreSQL the server runs with "new,old"
throughout, and `/health` is requested one after another (every 10 ms) for 3 s
before and all through the run: its p50/p99/max show what the run costs the
server's answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert, select, update

from bench.common import client, connect, database, percentile, register, server_process
from server.clock import utcnow
from server.db import Database
from server.models import agents, messages, sessions
from server.settings import Settings

CONTENT = "x" * 300
HEALTH_EVERY_SECONDS = 0.01
BASELINE_SECONDS = 3.0
INSERT_CHUNK = 5000


async def _setup_agents(url: str) -> tuple[str, str]:
    """Two connected agents and one message (so a session exists), via the real API."""
    async with client(url) as http:
        a, b = await register(http, "bench-a"), await register(http, "bench-b")
        await connect(http, a, b)
        sent = await http.post(
            "/messages/send",
            json={"to": b.name, "content": "first", "subject": "bench"},
            headers=a.headers,
        )
        sent.raise_for_status()
    return a.name, b.name


async def _fill(database_url: str, key: str, names: tuple[str, str], count: int) -> None:
    fernet = Fernet(key.encode())
    db = Database(Settings(_env_file=None, DATABASE_URL=database_url))  # type: ignore[call-arg]
    try:
        async with db.read() as conn:
            ids = dict((await conn.execute(select(agents.c.name, agents.c.id))).all())
            session_id = (await conn.execute(select(sessions.c.id))).scalar_one()
        sender, recipient = ids[names[0]], ids[names[1]]
        seq = 1
        while seq <= count:
            rows = []
            for _ in range(min(INSERT_CHUNK, count + 1 - seq)):
                seq += 1
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "to_agent_id": recipient,
                        "seq": seq,
                        "from_agent_id": sender,
                        "session_id": session_id,
                        "content_encrypted": fernet.encrypt(CONTENT.encode()),
                        "correlation_id_encrypted": (
                            fernet.encrypt(f"corr-{seq}".encode()) if seq % 2 else None
                        ),
                        "encrypted": False,
                        "created_at": utcnow(),
                    }
                )
            async with db.write() as conn:
                await conn.execute(insert(messages), rows)
        async with db.write() as conn:
            await conn.execute(update(agents).where(agents.c.id == recipient).values(last_seq=seq))
    finally:
        await db.dispose()


async def _health_poller(url: str, samples: list[float], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while not stop.is_set():
            started = time.perf_counter()
            response = await http.get("/health")
            response.raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(HEALTH_EVERY_SECONDS)


async def _reencrypt(env: dict[str, str], batch_size: int, niceness: int) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *(("nice", "-n", str(niceness)) if niceness else ()),
        sys.executable,
        "-m",
        "server",
        "reencrypt",
        "--batch-size",
        str(batch_size),
        env=env,
    )
    code = await process.wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"reencrypt exited with {code}")
    return elapsed


async def _reencrypt_while_serving(
    url: str, env: dict[str, str], batch_size: int, niceness: int
) -> None:
    baseline: list[float] = []
    stop = asyncio.Event()
    poller = asyncio.create_task(_health_poller(url, baseline, stop))
    await asyncio.sleep(BASELINE_SECONDS)
    stop.set()
    await poller
    during: list[float] = []
    stop = asyncio.Event()
    poller = asyncio.create_task(_health_poller(url, during, stop))
    elapsed = await _reencrypt(env, batch_size, niceness)
    stop.set()
    await poller
    print(f"reencrypt: {elapsed:.1f} s (with the server up)")
    for label, samples in (("before", baseline), ("during", during)):
        print(
            f"/health {label}: n={len(samples)} p50={percentile(samples, 50):.2f} ms "
            f"p99={percentile(samples, 99):.2f} ms max={max(samples):.2f} ms"
        )


def run(backend: str, count: int, batch_size: int, niceness: int) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    print(
        f"backend {backend}: {count:,} messages, batch size {batch_size}, nice {niceness}",
        flush=True,
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with database(backend) as url:
        with server_process(url, MAILBOX_ENCRYPTION_KEY=old) as (server_url, _process):
            names = asyncio.run(_setup_agents(server_url))
        started = time.perf_counter()
        asyncio.run(_fill(url, old, names, count))
        print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "MAILBOX_ENCRYPTION_KEY": f"{new},{old}",
            "MAILBOX_LOG_LEVEL": "warning",
        }
        if backend == "sqlite":
            elapsed = asyncio.run(_reencrypt(env, batch_size, niceness))
            print(f"reencrypt: {elapsed:.1f} s (server down)")
            return
        with server_process(url, MAILBOX_ENCRYPTION_KEY=f"{new},{old}") as (server_url, _p):
            asyncio.run(_reencrypt_while_serving(server_url, env, batch_size, niceness))


def _run_and_report_load(backend: str, count: int, batch_size: int, niceness: int) -> None:
    try:
        run(backend, count, batch_size, niceness)
    finally:
        print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--nice", type=int, default=0, help="run reencrypt under `nice -n N` (0: as is)"
    )
    args = parser.parse_args()
    _run_and_report_load(args.backend, args.messages, args.batch_size, args.nice)


if __name__ == "__main__":
    main()
