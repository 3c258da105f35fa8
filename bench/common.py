"""Shared pieces of the benchmarks: a real server process, agents, percentiles.

CPU accounting is in `bench.cpu`, the lean load client in `bench.rawhttp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from cryptography.fernet import Fernet

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILBOX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Benchmarks measure the server, not its backstops: the per-pair hourly limit would
# refuse most of their messages, so every benchmark server runs without it, and says so.
PAIR_LIMIT_OFF = "0"
PAIR_LIMIT_NOTE = "pair limit off (MAILBOX_PAIR_MESSAGES_PER_HOUR=0)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(label: str, latencies_ms: list[float]) -> str:
    return (
        f"{label}: n={len(latencies_ms)} p50={percentile(latencies_ms, 50):.2f} ms "
        f"p99={percentile(latencies_ms, 99):.2f} ms max={max(latencies_ms):.2f} ms"
    )


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        return
    name = f"mailbox_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{name}"
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def postgres_pids(database_url: str) -> set[int]:
    """The backends serving this database and PostgreSQL's own background processes."""
    if database_url.startswith("sqlite"):
        return set()
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = $1 OR backend_type <> 'client backend'",
            name,
        )
    finally:
        await conn.close()
    return {row["pid"] for row in rows}


@contextlib.contextmanager
def server_process(
    database_url: str, **extra_env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mailbox-server` as its own process (migrated first), generous limits for load,
    the pair limit off (printed, so every benchmark's output says so)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MAILBOX_PORT": str(port),
        "MAILBOX_LOG_LEVEL": "warning",
        "MAILBOX_REQUESTS_PER_SECOND": "100000",
        "MAILBOX_REQUEST_BURST": "100000",
        "MAILBOX_REGISTRATIONS_PER_HOUR_PER_CLIENT": "1000000",
        "MAILBOX_MAX_INFLIGHT_SENDS": "100000",
        **extra_env,
        "MAILBOX_PAIR_MESSAGES_PER_HOUR": PAIR_LIMIT_OFF,
    }
    if not database_url.startswith("sqlite"):
        env.setdefault("MAILBOX_ENCRYPTION_KEY", Fernet.generate_key().decode())
        subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, check=True)
    process = subprocess.Popen([sys.executable, "-m", "server"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        print(f"  server: {PAIR_LIMIT_NOTE}", flush=True)
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class BenchAgent:
    name: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def register(http: httpx.AsyncClient, prefix: str) -> BenchAgent:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    response = await http.post("/agents/register", json={"name": name})
    response.raise_for_status()
    return BenchAgent(name, response.json()["api_key"])


async def connect(http: httpx.AsyncClient, a: BenchAgent, b: BenchAgent) -> None:
    request = await http.post(
        "/connections/request", json={"target_agent_name": b.name}, headers=a.headers
    )
    request.raise_for_status()
    approve = await http.post(
        "/connections/approve",
        json={"verification_code": request.json()["verification_code"]},
        headers=b.headers,
    )
    approve.raise_for_status()


@contextlib.asynccontextmanager
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        yield http


def timed_runs(operation: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run, after one warm-up run."""
    operation()
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        operation()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return wall, cpu
