"""`/health` latency while clients publish OpenPGP keys crafted to cost the server CPU.

    .venv/bin/python -m bench.openpgp_register                      # every kind of key, SQLite
    .venv/bin/python -m bench.openpgp_register --key many-user-ids --clients 10 --seconds 10

A real `mailbox-server` process. Each of `--clients` agents publishes its key
again and again for `--seconds` (one request at a time per client), while a
prober asks `GET /health` every 10 ms on its own connection; the same probe
runs first with no uploads, for comparison in the same run. The probe is a
process of its own, so that it measures the server and not its own GIL. Keys
(`tests/abusive_keys.py`), all within the field's 64 KiB:

- `many-user-ids`: the issue's case, about 15,000 empty user-id packets
  (pgpy: 2-3 s of CPU each);
- `fat-signature`: one self-signature with about 10,000 subpackets (pgpy: ~9 s);
- `heaviest-allowed`: the costliest key the packet limits still accept
  (pgpy: ~20 ms), so what a client can make the server parse for real;
- `small-refused`: the control, a 1 KiB key refused at once: what ten clients
  flooding any endpoint cost `/health`, keys or not.

Target (../shared/TARGETS.md): `/health` p99 <= 50 ms while 10 clients upload.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx

from bench.common import client, cpu_seconds, database, register, server_process, summary
from mailbox_mcp.e2e.openpgp import PrivateKey
from tests import abusive_keys

KEYS: dict[str, Callable[[str], str]] = {
    "many-user-ids": abusive_keys.many_user_ids,
    "fat-signature": abusive_keys.one_fat_signature,
    "heaviest-allowed": abusive_keys.heaviest_allowed,
    # The control: the same request, refused as cheaply as anything can be (two keys in
    # one block, ~1 KiB), to tell what the keys cost from what any request flood costs.
    "small-refused": lambda armored: abusive_keys.join(abusive_keys.split(armored) * 2),
}
PROBE_INTERVAL = 0.010


def _probe(url: str) -> None:
    """Print /health latencies (ms) and failures, one request every PROBE_INTERVAL until
    stdin closes. A 503 or a timeout is a failure, and its time counts as its latency.

    Runs as its own process (`--probe`), so what it measures is the server, not the
    GIL of the process that drives the uploads.
    """
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    latencies: list[float] = []
    failures = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                failures += http.get("/health").status_code != 200
            except httpx.HTTPError:
                failures += 1
            latencies.append((time.perf_counter() - started) * 1000)
            stop.wait(PROBE_INTERVAL)
    print(json.dumps({"latencies": latencies, "failures": failures}))


async def _probed(url: str, load: Callable[[], Awaitable[object]]) -> tuple[list[float], int]:
    prober = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.openpgp_register", "--probe", url],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await load()
    finally:
        output, _ = await prober.communicate(b"")  # closes its stdin: it stops and reports
    report = json.loads(output)
    return report["latencies"], report["failures"]


async def _run(url: str, pid: int, kind: str, clients: int, seconds: float) -> None:
    async with client(url) as http:
        agents = [await register(http, "pgp") for _ in range(clients)]
        bodies = []
        for agent in agents:
            key = PrivateKey.generate(agent.name)
            armored = KEYS[kind](key.public_armored())
            bodies.append(
                {
                    "public_key": key.spki_pem(),
                    "algorithm": key.algorithm,
                    "key_version": 1,
                    "openpgp_public_key": armored,
                }
            )
        statuses: Counter[str] = Counter()
        upload_ms: list[float] = []

        async def uploads(agent_index: int, deadline: float) -> None:
            headers = agents[agent_index].headers
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await http.post(
                        "/directory/register", json=bodies[agent_index], headers=headers
                    )
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                upload_ms.append((time.perf_counter() - started) * 1000)

        async def idle() -> None:
            await asyncio.sleep(3)

        async def loaded() -> None:
            deadline = time.monotonic() + seconds
            await asyncio.gather(*(uploads(i, deadline) for i in range(clients)))

        quiet, quiet_failures = await _probed(url, idle)
        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
        busy, busy_failures = await _probed(url, loaded)
        cpu = cpu_seconds(pid) - cpu_before
        wall = time.perf_counter() - wall_before
    size = len(bodies[0]["openpgp_public_key"])
    print(f"  key {kind} ({size} chars), {clients} clients for {seconds:.0f} s:")
    print(f"    {summary('/health, no uploads', quiet)}, failed {quiet_failures}")
    print(f"    {summary('/health, uploads', busy)}, failed {busy_failures}")
    print(f"    {summary('uploads', upload_ms)}; statuses {dict(statuses)}")
    print(f"    server CPU {cpu:.1f} s in {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--key", choices=[*KEYS, "all"], default="all")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        _probe(args.probe)
        return
    kinds = list(KEYS) if args.key == "all" else [args.key]
    with database(args.backend) as url, server_process(url) as (server_url, process):
        print(f"openpgp_register on {args.backend}")
        for kind in kinds:
            asyncio.run(_run(server_url, process.pid, kind, args.clients, args.seconds))


if __name__ == "__main__":
    main()
