"""OpenPGP cost per 2 KiB message, and what end-to-end encryption adds to send -> injection.

    .venv/bin/python -m bench.openpgp                    # crypto only: default keys, RSA-4096
    .venv/bin/python -m bench.openpgp --runs 500 --rsa-runs 30
    .venv/bin/python -m bench.openpgp --latency 100      # also the bridge path, 100 of each

Crypto: `mailbox_mcp.e2e.openpgp` as the bridge calls it (armored in, armored out),
timed per operation over `--runs` runs (`--rsa-runs` for RSA-4096, whose
private operations are slow in pgpy), wall clock and process CPU. For
comparison, the same work with pgpy's defaults (its own armor, ZIP
compression), which is what "pgpy is slow in places" means.

Latency (`--latency N`): the whole path for real, as in
`bench.send_to_injection`: `mailbox-server` (SQLite) in its own process, the
sender's bridge (`mailbox_send` over MCP stdio) and the receiver's bridge
(push mode) into a loopback OpenClaw gateway that stamps each arrival. N
plaintext and N encrypted sends alternate, one at a time, so nothing queues;
the difference is what encryption adds (seal in one bridge, open and verify,
with the key cached, in the other).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile, timed_runs
from mailbox_mcp.e2e import openpgp
from mailbox_mcp.e2e.openpgp import PrivateKey


def _message(size: int = 2048) -> str:
    """Text that compresses like prose (about 2:1), so pgpy's ZIP default is not flattered."""
    words = (
        "the a report of numbers can you check appendix revenue churn flat up down "
        "quarter plan launch review data ✓ ünïcödé 2026 Q3 4 % table figure draft".split()
    )
    rng = random.Random(42)
    text = ""
    while len(text.encode()) < size:
        text += " ".join(rng.choice(words) for _ in range(12)) + f" {rng.randrange(10**6)}.\n"
    return text.encode()[:size].decode("utf-8", errors="ignore")


MESSAGE = _message()


def _line(label: str, wall: list[float], cpu: list[float]) -> str:
    return (
        f"  {label:<34} median {statistics.median(wall):7.2f} ms"
        f"  p99 {percentile(wall, 99):7.2f} ms"
        f"   (CPU median {statistics.median(cpu):6.2f} ms, n={len(wall)})"
    )


def bench_keys(label: str, rsa_bits: int | None, runs: int) -> None:
    alice = PrivateKey.generate("alice", rsa_bits=rsa_bits)
    bob = PrivateKey.generate("bob", rsa_bits=rsa_bits)
    to_bob, from_alice = bob.public_key("bob"), alice.public_key("alice")
    sealed = openpgp.encrypt_and_sign(MESSAGE, to_bob, alice)
    assert openpgp.decrypt_and_verify(sealed, bob, from_alice)[1].status == "valid"
    print(f"{label} ({alice.algorithm}), {len(MESSAGE.encode())} bytes of UTF-8:")
    print(
        _line(
            "encrypt+sign",
            *timed_runs(lambda: openpgp.encrypt_and_sign(MESSAGE, to_bob, alice), runs),
        )
    )
    print(
        _line(
            "decrypt+verify",
            *timed_runs(lambda: openpgp.decrypt_and_verify(sealed, bob, from_alice), runs),
        )
    )
    if rsa_bits is None:
        _bench_pgpy_defaults(alice, bob, runs)


def _bench_pgpy_defaults(alice: PrivateKey, bob: PrivateKey, runs: int) -> None:
    import warnings

    import pgpy

    warnings.simplefilter("ignore")  # pgpy: "compression algorithm not in key preferences"

    def seal() -> str:
        message = pgpy.PGPMessage.new(MESSAGE)
        message |= alice.key.sign(message)
        return str(bob.key.pubkey.encrypt(message))

    armored = seal()
    sender = alice.key.pubkey

    def open_() -> None:
        clear = bob.key.decrypt(pgpy.PGPMessage.from_blob(armored))
        assert sender.verify(clear)

    print(_line("for comparison, pgpy defaults: seal", *timed_runs(seal, runs)))
    print(_line("for comparison, pgpy defaults: open", *timed_runs(open_, runs)))


# --- the bridge path -------------------------------------------------------------------


async def bench_latency(url: str, count: int) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from bench.common import client, connect, register
    from tests.fakes.openclaw_gateway import FakeGateway

    token = "bench-gateway-token"
    async with client(url) as http:
        sender, receiver = await register(http, "sender"), await register(http, "receiver")
        await connect(http, sender, receiver)
        with tempfile.TemporaryDirectory() as root, FakeGateway(token=token) as gateway:
            envs = {}
            for agent, role in ((sender, "sender"), (receiver, "receiver")):
                state = Path(root) / role
                key = PrivateKey.generate(agent.name)
                key.write(state / "openpgp-private-key.asc", None)
                response = await http.post(
                    "/directory/register",
                    headers=agent.headers,
                    json={
                        "public_key": key.spki_pem(),
                        "algorithm": key.algorithm,
                        "key_version": 1,
                        "openpgp_public_key": key.public_armored(),
                    },
                )
                response.raise_for_status()
                envs[role] = {
                    "MAILBOX_SERVER_URL": url,
                    "MAILBOX_API_KEY": agent.api_key,
                    "MAILBOX_STATE_DIR": str(state),
                    "MAILBOX_LOG_LEVEL": "WARNING",
                }
            envs["receiver"] |= {
                "OPENCLAW_GATEWAY_URL": gateway.url,
                "OPENCLAW_GATEWAY_TOKEN": token,
            }

            def params(role: str) -> StdioServerParameters:
                return StdioServerParameters(
                    command=sys.executable, args=["-m", "mailbox_mcp"], env=envs[role]
                )

            async with Client(params("sender")) as out, Client(params("receiver")):
                session: dict[str, Any] = {"subject": "bench"}
                samples: dict[bool, list[float]] = {False: [], True: []}
                for i in range(2 * count + 2):  # the first pair warms caches and sessions
                    encrypt = i % 2 == 1
                    started = time.time()
                    result = await out.call_tool(
                        "mailbox_send",
                        {"to": receiver.name, "content": MESSAGE, "encrypt": encrypt, **session},
                    )
                    assert not result.is_error, result.content
                    session = {"session_id": result.structured_content["session_id"]}
                    [*_, landed] = await asyncio.to_thread(gateway.wait_for_injections, i + 1, 30)
                    assert MESSAGE.splitlines()[0] in landed.message, landed.message
                    if i >= 2:
                        samples[encrypt].append((landed.ts - started) * 1000)
    plain, sealed = samples[False], samples[True]
    for label, values in (("plaintext", plain), ("encrypted (OpenPGP)", sealed)):
        print(
            f"  mailbox_send -> sessions_send, {label:<20} median {statistics.median(values):6.2f}"
            f" ms  p99 {percentile(values, 99):6.2f} ms  (n={len(values)})"
        )
    added = statistics.median(sealed) - statistics.median(plain)
    print(f"  added by end-to-end encryption: {added:.2f} ms (median)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rsa-runs", type=int, default=20)
    parser.add_argument("--latency", type=int, default=0, metavar="N")
    args = parser.parse_args()
    bench_keys("Default keys", None, args.runs)
    bench_keys("RSA-4096", 4096, args.rsa_runs)
    if args.latency:
        from bench.common import database, server_process

        print(f"Bridge path, {args.latency} plaintext and {args.latency} encrypted 2 KiB sends:")
        with database("sqlite") as url, server_process(url) as (base, _):
            asyncio.run(bench_latency(base, args.latency))


if __name__ == "__main__":
    main()
