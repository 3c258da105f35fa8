"""Two agents through two real OpenClaw gateways: send latency and the setup's memory.

    .venv/bin/python -m bench.two_agents               # 50 messages
    .venv/bin/python -m bench.two_agents --count 20    # 1..200

Needs the pinned OpenClaw install (``scripts/install-openclaw.sh``), about 3 GB of
RAM and stops nothing else: stop other gateways first.

The setup of ``tests/openclaw/test_two_agents.py`` (``tests.openclaw.two_agents``):
one mailbox server (in this process, SQLite), two gateways each with its own
scripted model and the dedicated ``mailbox`` agent, stdio bridges that OpenClaw
starts itself. For each message A's owner asks in A's main session, A's model
calls ``mailbox__mailbox_send`` (through ``tool_call``, behind tool search) and
B's fenced per-peer session gets the envelope; messages go one at a time.

Latency: from the moment A's scripted model answers with the tool call to the
moment B's scripted model gets the request carrying the envelope (both stamped
with ``time.monotonic()`` in this process). It covers OpenClaw running A's tool
call, the bridge's send, the server, B's listener, the injection into B's gateway
and the start of B's run.

Memory: RSS of each gateway's process tree (with the bridges OpenClaw started,
listed separately) and of this process (mailbox server and both scripted models).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import PAIR_LIMIT_NOTE, PAIR_LIMIT_OFF, percentile, summary
from tests.helpers import connect_agents, register
from tests.openclaw.gateway import OpenClawInstall
from tests.openclaw.processes import gateway_pid, rss_bytes, tree
from tests.openclaw.scripted_model import ModelRequest, Reply, Text, ToolCall
from tests.openclaw.two_agents import (
    MAIN_SESSION,
    Side,
    send_call,
    two_sides,
)
from tests.servers import ServerThread, server_settings, sqlite_url

MAX_COUNT = 200
PER_MESSAGE_TIMEOUT = 90.0
_MB = 1024 * 1024


def run(count: int) -> None:
    install = OpenClawInstall.ensure()
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="bench-two-agents-") as tmp:
        workdir = Path(tmp)
        (workdir / "server").mkdir()
        settings = server_settings(
            sqlite_url(workdir / "server"), MAILBOX_PAIR_MESSAGES_PER_HOUR=PAIR_LIMIT_OFF
        )
        with ServerThread(settings) as server:
            print(f"server: {PAIR_LIMIT_NOTE}", flush=True)
            a_agent, b_agent = register(server.url, "alice"), register(server.url, "bob")
            connect_agents(a_agent, b_agent)
            started = time.monotonic()
            with two_sides(install, workdir, server.url, a_agent, b_agent) as (a, b):
                print(f"two gateways up in {time.monotonic() - started:.1f} s", flush=True)
                measure(a, b, count, tag)


def measure(a: Side, b: Side, count: int, tag: str) -> None:
    sent_at: dict[int, float] = {}
    ask = re.compile(rf"BENCH-{tag}-(\d+)")

    def a_script(request: ModelRequest) -> Reply:
        if request.session == MAIN_SESSION:
            # the highest-numbered ask not yet sent (each owner turn asks one more)
            pending = [int(n) for n in ask.findall(request.text()) if int(n) not in sent_at]
            if pending:
                i = max(pending)
                sent_at[i] = request.at
                content = f"bench-{tag}-{i}-payload"
                return ToolCall("tool_call", send_call(b.agent.name, content, subject=f"b{i}"))
        return Text("ok")

    a.model.script = a_script
    b.model.script = lambda request: Text("ok")
    b_key = b.peer_key(a)
    b.wake()
    a.wake()

    latencies: list[float] = []
    for i in range(count):
        a_before = len(a.model.requests)
        a.ask(f"send BENCH-{tag}-{i}")
        needle = f"bench-{tag}-{i}-payload"
        got = b.model.wait_for(
            lambda rs, needle=needle: any(r.session == b_key and needle in r.text() for r in rs),
            PER_MESSAGE_TIMEOUT,
            f"B's model to get message {i} (A: {[(r.session, r.reply) for r in a.model.requests]})",
        )
        arrived = next(r.at for r in got if r.session == b_key and needle in r.text())
        latencies.append((arrived - sent_at[i]) * 1000)
        # A's main run ends (its text turn after the tool result) before the next ask
        a.model.wait_for(
            lambda rs, a_before=a_before: (
                sum(1 for r in rs[a_before:] if r.session == MAIN_SESSION) >= 2
            ),
            PER_MESSAGE_TIMEOUT,
            f"A's run for message {i} to end",
        )
        time.sleep(0.5)  # let B's run finish too, so each message meets idle sessions
        if (i + 1) % 10 == 0:
            print(f"  {i + 1} messages, last {latencies[-1]:.0f} ms", flush=True)
    print(summary("A's tool call -> B's model has the envelope", latencies))
    print(f"  p50={percentile(latencies, 50):.0f} ms p99={percentile(latencies, 99):.0f} ms")

    total = 0
    for side in (a, b):
        everything = tree(gateway_pid(side.gateway))
        bridges = side.bridge_pids()
        bridge_trees = sorted({p for pid in bridges for p in tree(pid)})
        gateway_only = [p for p in everything if p not in bridge_trees]
        g, br = rss_bytes(gateway_only), rss_bytes(bridge_trees)
        total += g + br
        print(
            f"{side.name}: gateway tree {g / _MB:.0f} MB, {len(bridges)} bridges "
            f"{br / _MB:.0f} MB ({', '.join(f'{rss_bytes([p]) / _MB:.0f}' for p in bridges)} MB)"
        )
    own = rss_bytes([int(Path("/proc/self").resolve().name)])
    total += own
    print(f"this process (mailbox server + 2 scripted models): {own / _MB:.0f} MB")
    print(f"whole two-agent setup: {total / _MB:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help=f"messages (1..{MAX_COUNT})")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_COUNT:
        sys.exit(f"--count must be 1..{MAX_COUNT}")
    run(args.count)


if __name__ == "__main__":
    main()
