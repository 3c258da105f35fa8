"""Memory of the mailbox bridge per OpenClaw session, inside a real OpenClaw gateway.

    .venv/bin/python -m bench.bridge_memory                # 4 sessions
    .venv/bin/python -m bench.bridge_memory --sessions 6   # 1..12

Needs the pinned OpenClaw install (``scripts/install-openclaw.sh``) and about 2.5 GB
of RAM with 4 sessions (each stdio session adds about 200 MB); it runs one gateway
at a time and stops nothing else: stop other gateways first.

Two setups, each in a fresh gateway configured as ``mailbox-mcp config openclaw``
prints it (the dedicated ``mailbox`` agent owns the peer sessions), with a scripted
model so that runs finish:

- ``stdio``: ``mcp.servers.mailbox`` is the bridge's command; OpenClaw starts one
  bridge process per session that runs (through its own relay processes).
- ``serve``: one ``mailbox-mcp serve`` process, which OpenClaw reaches through
  ``mcp.servers.mailbox.url``; every session shares it.

In each, one owner turn runs in each of N sessions (``agent:main:main`` and N-1
sessions of the ``mailbox`` agent), one after the other. Measured from /proc, after
the runs: the RSS of each bridge process OpenClaw started (stdio) or of the serve
process (serve), of the other processes OpenClaw added (its relays), and how much
the gateway's process tree grew from before the first turn to after the last
(everything OpenClaw added: bridges, relays, the gateway's own heap for the
sessions), in all and with each turn. The growth also holds what the gateway spends
on running agent turns at all (the first run in main, and the first of the
``mailbox`` agent, load code), in both setups alike: the difference between the two
setups is the bridge's share. Summed RSS counts pages the processes share (Node's
code in the relays) once per process; the PSS of bridges and relays is printed too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import PAIR_LIMIT_NOTE, PAIR_LIMIT_OFF
from tests.helpers import Agent, register
from tests.openclaw.dedicated import (
    MAIN_SESSION,
    PEER_AGENT,
    dedicated_patch,
    owner_turn,
    wait_until,
)
from tests.openclaw.gateway import OpenClawInstall, RealGateway
from tests.openclaw.processes import bridge_pids, gateway_pid, pss_bytes, rss_bytes, tree
from tests.openclaw.scripted_model import ScriptedModel, Text
from tests.servers import ServerThread, free_port, server_settings, sqlite_url

MAX_SESSIONS = 12
TURN_TIMEOUT = 90.0
# RSS moves for a moment after a run ends (the gateway writes transcripts, Node's GC,
# a bridge finishing its start-up): each measurement waits this long first.
SETTLE_SECONDS = 3.0
_MiB = 1024 * 1024


def session_keys(count: int) -> list[str]:
    return [MAIN_SESSION] + [f"agent:{PEER_AGENT}:dm:mailbox-bench{k}" for k in range(1, count)]


@dataclass
class Result:
    setup: str
    sessions: int
    tree_before: int
    # gateway tree after each session's turn (settled), in session order
    tree_steps: list[int] = field(default_factory=list)
    bridges: list[int] = field(default_factory=list)  # RSS of each bridge process
    bridges_pss: int = 0
    relays: list[int] = field(default_factory=list)  # RSS of OpenClaw's other new processes
    relays_pss: int = 0
    gateway_growth: int = 0  # of the gateway process itself
    serve: int = 0  # RSS of the serve process

    @property
    def tree_after(self) -> int:
        return self.tree_steps[-1]

    @property
    def growth(self) -> int:
        return self.tree_after - self.tree_before

    @property
    def per_turn(self) -> list[int]:
        """How much the tree grew with each session's turn."""
        marks = [self.tree_before, *self.tree_steps]
        return [b - a for a, b in itertools.pairwise(marks)]

    @property
    def total_per_session(self) -> float:
        """What the setup costs per session: the tree growth and the serve process."""
        return (self.growth + self.serve) / self.sessions


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def python_bridges(state_dir: Path) -> list[int]:
    """The bridge processes themselves (Python), not a relay that carries the same
    environment and command line."""
    found = []
    for pid in bridge_pids(state_dir):
        try:
            exe = Path(f"/proc/{pid}/exe").resolve().name
        except OSError:
            continue
        if exe.startswith("python"):
            found.append(pid)
    return found


def describe(pids: list[int]) -> str:
    """One line per process: pid, RSS, PSS and its command line (paths by their name)."""
    lines = []
    for pid in sorted(pids):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        cmd = " ".join(Path(a).name if a.startswith("/") else a for a in argv if a)
        rss, pss = rss_bytes([pid]) / _MiB, pss_bytes([pid]) / _MiB
        lines.append(f"    {pid:>7} RSS {rss:6.1f} PSS {pss:6.1f} MiB  {cmd[:100]}")
    return "\n".join(lines)


def settled_tree_rss(gateway: RealGateway) -> int:
    time.sleep(SETTLE_SECONDS)  # see SETTLE_SECONDS
    return rss_bytes(tree(gateway_pid(gateway)))


@contextmanager
def serve_process(env: dict[str, str], port: int, log: Path) -> Iterator[int]:
    """``mailbox-mcp serve`` on ``port``; yields its pid once /mcp answers."""
    url = f"http://127.0.0.1:{port}/mcp"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "mailbox_mcp", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {log.read_text()}")
            try:
                httpx.get(url, timeout=1)  # 401 without the token: it listens
            except httpx.HTTPError:
                return False
            return True

        wait_until(answers, 30, "mailbox-mcp serve to listen", every=0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def measure(
    setup: str,
    install: OpenClawInstall,
    workdir: Path,
    server: ServerThread,
    me: Agent,
    sessions: int,
) -> Result:
    """One fresh gateway with ``setup``; N owner turns; the memory afterwards."""
    workdir.mkdir()
    state = workdir / "bridge-state"
    # the stdio bridges' cwd: it must exist before OpenClaw starts them
    state.mkdir(mode=0o700)
    (workdir / "workspace-main").mkdir()
    with ScriptedModel() as model:
        model.script = lambda request: Text("ok")
        gateway = RealGateway(install, workdir)
        try:
            gateway.configure()
            gateway.cli("config", "patch", "--stdin", stdin=json.dumps(model.openclaw_config()))
            env = {
                "MAILBOX_SERVER_URL": server.url,
                "MAILBOX_API_KEY": me.api_key,
                "MAILBOX_STATE_DIR": str(state),
                "OPENCLAW_GATEWAY_URL": gateway.url,
                "OPENCLAW_GATEWAY_TOKEN": gateway.token,
                "OPENCLAW_AGENT_ID": PEER_AGENT,
            }
            serve: dict[str, Any] = {}
            port = free_port()
            if setup == "serve":
                env["MAILBOX_SERVE_TOKEN"] = f"serve-{uuid.uuid4().hex}"
                serve = {
                    "serve_url": f"http://127.0.0.1:{port}/mcp",
                    "serve_token": env["MAILBOX_SERVE_TOKEN"],
                }
            config = dedicated_patch(env, workdir, **serve)
            gateway.cli("config", "patch", "--stdin", stdin=json.dumps(config))
            started = time.monotonic()
            gateway.start()
            progress(f"{setup}: gateway up in {time.monotonic() - started:.1f} s")
            if setup == "serve":
                with serve_process(env, port, workdir / "serve.log") as serve_pid:
                    return _turns(setup, gateway, model, state, sessions, serve_pid)
            return _turns(setup, gateway, model, state, sessions, None)
        except BaseException:
            progress(gateway.log_tail())
            raise
        finally:
            gateway.close()


def _turns(
    setup: str,
    gateway: RealGateway,
    model: ScriptedModel,
    state: Path,
    sessions: int,
    serve_pid: int | None,
) -> Result:
    root = gateway_pid(gateway)
    result = Result(setup, sessions, settled_tree_rss(gateway))
    before_pids = set(tree(root))
    gateway_before = rss_bytes([root])
    progress(f"{setup}: gateway tree before {result.tree_before / _MiB:.0f} MiB")

    def bridges() -> list[int]:
        # the ones OpenClaw started: serve has the same state dir, outside the tree
        inside = set(tree(root))
        return [pid for pid in python_bridges(state) if pid in inside]

    keys = session_keys(sessions)
    for i, key in enumerate(keys, 1):
        owner_turn(gateway, key, f"hello {i}", within=TURN_TIMEOUT)
        if not model.requests_in(key):
            raise AssertionError(f"{setup}: the run in {key} did not reach the model")
        if setup == "stdio":
            wait_until(lambda i=i: len(bridges()) >= i, 60, f"{i} bridges")
        result.tree_steps.append(settled_tree_rss(gateway))
        progress(f"{setup}: {key}: gateway tree {result.tree_steps[-1] / _MiB:.0f} MiB")
    everything = tree(root)
    started = bridges()
    result.bridges = [rss_bytes([pid]) for pid in started]
    result.bridges_pss = pss_bytes(started)
    added = [p for p in everything if p not in before_pids and p not in started]
    result.relays = [rss_bytes([pid]) for pid in added]
    result.relays_pss = pss_bytes(added)
    result.gateway_growth = rss_bytes([root]) - gateway_before
    if serve_pid is not None:
        result.serve = rss_bytes([serve_pid])
    progress(f"{setup}: gateway tree after the runs:\n{describe(everything)}")
    # OpenClaw did connect the mailbox server in every session (asked after measuring,
    # so that the question cannot change what was measured)
    for key in keys:
        tools = gateway.effective_tools(key)
        if not any(tool.startswith("mailbox__") for tool in tools):
            raise AssertionError(f"{setup}: {key} has no mailbox tools: {sorted(tools)}")
    expected = sessions if setup == "stdio" else 0
    if len(started) != expected:
        raise AssertionError(f"{setup}: {len(started)} bridges in the tree, not {expected}")
    return result


def report(results: list[Result], sessions: int) -> None:
    def mib(value: float) -> str:
        return f"{value / _MiB:.0f}"

    print(
        f"bridge memory in a real OpenClaw gateway: {sessions} sessions "
        f"(main + {sessions - 1} of agent {PEER_AGENT}), RSS in MiB"
    )
    header = (
        "setup",
        "bridges (each)",
        "relays (procs)",
        "serve",
        "gateway proc +",
        "tree before>after",
        "tree + per turn",
        "tree +/session",
        "total/session",
    )
    rows = [
        (
            r.setup,
            f"{mib(sum(r.bridges))} ({', '.join(mib(b) for b in r.bridges)})" if r.bridges else "0",
            f"{mib(sum(r.relays))} ({len(r.relays)})",
            mib(r.serve) if r.serve else "-",
            mib(r.gateway_growth),
            f"{mib(r.tree_before)}>{mib(r.tree_after)}",
            ", ".join(mib(step) for step in r.per_turn),
            mib(r.growth / r.sessions),
            mib(r.total_per_session),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    for r in results:
        if r.bridges:
            n = len(r.bridges)
            print(
                f"{r.setup}: bridge + OpenClaw's relays per session: "
                f"{mib((sum(r.bridges) + sum(r.relays)) / n)} MiB RSS "
                f"(bridge {mib(sum(r.bridges) / n)}, relays {mib(sum(r.relays) / n)}); "
                f"PSS {mib((r.bridges_pss + r.relays_pss) / n)} MiB "
                f"(bridge {mib(r.bridges_pss / n)}, relays {mib(r.relays_pss / n)})"
            )
    print(
        "relays: processes OpenClaw added besides the bridges; tree: the gateway's process "
        "tree; total/session: (tree growth + serve) / sessions"
    )


def run(sessions: int) -> None:
    install = OpenClawInstall.ensure()
    with tempfile.TemporaryDirectory(prefix="bench-bridge-memory-") as tmp:
        workdir = Path(tmp)
        (workdir / "server").mkdir()
        settings = server_settings(
            sqlite_url(workdir / "server"), MAILBOX_PAIR_MESSAGES_PER_HOUR=PAIR_LIMIT_OFF
        )
        with ServerThread(settings) as server:
            print(f"server: {PAIR_LIMIT_NOTE}", flush=True)
            me = register(server.url, "me")
            results = [
                measure(setup, install, workdir / setup, server, me, sessions)
                for setup in ("stdio", "serve")  # one gateway at a time
            ]
    report(results, sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sessions", type=int, default=4, help=f"sessions with a run (1..{MAX_SESSIONS})"
    )
    args = parser.parse_args()
    if not 1 <= args.sessions <= MAX_SESSIONS:
        sys.exit(f"--sessions must be 1..{MAX_SESSIONS}")
    run(args.sessions)


if __name__ == "__main__":
    main()
