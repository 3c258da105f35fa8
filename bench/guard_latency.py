"""What inbound screening adds per message: `InboundGuard.screen` against a scripted model.

    .venv/bin/python -m bench.guard_latency                 # 200 messages of 2 KiB
    .venv/bin/python -m bench.guard_latency --count 1000 --size 16384

The scripted OpenAI-compatible model of the tests (`tests/fakes/guard_model.py`)
runs on loopback, in a thread of this process, and answers a clean allow at
once. So the figures are the guard's own cost: building the enveloped prompt,
one HTTP round trip on a kept-alive connection, strict parsing. A real model's
inference time comes on top and dominates in practice.

Messages go one at a time, after `--warmup` unmeasured ones (the connection and
caches). Also timed: the local part alone (prompt and parse, no network).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import anyio

from bench.common import percentile
from mailbox_mcp.safety import guard as guard_module
from mailbox_mcp.safety.guard import InboundGuard
from tests.fakes.guard_model import MODEL_ID, GuardModel

SENDER = "agent-b"
SUBJECT = "Q3 figures"


def _message(size: int) -> str:
    words = "the a report of numbers can you check revenue churn quarter plan data ✓ ünï".split()
    rng = random.Random(42)
    text = ""
    while len(text.encode()) < size:
        text += " ".join(rng.choice(words) for _ in range(12)) + f" {rng.randrange(10**6)}.\n"
    return text.encode()[:size].decode("utf-8", errors="ignore")


def _line(label: str, values: list[float]) -> str:
    return (
        f"  {label:<34} p50 {percentile(values, 50):7.3f} ms  p99 {percentile(values, 99):7.3f} ms"
        f"  mean {statistics.fmean(values):7.3f} ms  max {max(values):7.3f} ms  (n={len(values)})"
    )


async def _screen_times(url: str, content: str, count: int, warmup: int) -> list[float]:
    guard = InboundGuard(url, MODEL_ID, api_key="sk-bench")
    samples = []
    try:
        for i in range(warmup + count):
            started = time.perf_counter()
            verdict = await guard.screen(from_agent=SENDER, subject=SUBJECT, content=content)
            took = (time.perf_counter() - started) * 1000
            assert verdict.allows, verdict
            if i >= warmup:
                samples.append(took)
    finally:
        await guard.aclose()
    return samples


def _local_times(content: str, count: int) -> list[float]:
    """Prompt and parse without the network: what the guard costs in CPU alone."""
    verdict = {"decision": "allow", "category": "none", "reason": "ok"}
    answer = json.dumps({"choices": [{"message": {"content": json.dumps(verdict)}}]}).encode()
    guard = InboundGuard("http://127.0.0.1:9/v1", MODEL_ID)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        json.dumps(guard._payload(SENDER, SUBJECT, content)).encode()
        guard_module._parse(answer)
        samples.append((time.perf_counter() - started) * 1000)
    anyio.run(guard.aclose)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=2048, help="message bytes (UTF-8)")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    content = _message(args.size)
    with GuardModel() as model:
        screened = anyio.run(_screen_times, model.base_url, content, args.count, args.warmup)
    local = _local_times(content, args.count)
    print(f"Inbound guard, {len(content.encode())}-byte messages, scripted model on loopback:")
    print(_line("screen() (added per message)", screened))
    print(_line("of which prompt + parse (no I/O)", local))


if __name__ == "__main__":
    main()
