"""Resident memory of one stdio bridge at rest, and what it imported.

    .venv/bin/python -m bench.bridge_at_rest              # push mode, 3 runs, the median
    .venv/bin/python -m bench.bridge_at_rest --pull       # no gateway: tools only
    .venv/bin/python -m bench.bridge_at_rest --modules    # and the heaviest packages it loaded

The bridge runs as an LLM host starts it (`python -m mailbox_mcp`, stdio) against a
real server (SQLite, in this process) and, in push mode, the loopback OpenClaw gateway
of the tests, so that the listener holds its WebSocket. This script speaks MCP's
JSON-RPC itself, so that it knows the bridge's pid (and reads nothing from another
engineer's bridge): `initialize`, `tools/list`, then VmRSS from /proc after a pause.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.openclaw_gateway import FakeGateway
from tests.helpers import register
from tests.servers import ServerThread, server_settings, sqlite_url

TOKEN = "bench-gateway-token"
SETTLE_SECONDS = 3.0


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _call(process: subprocess.Popen[bytes], message: dict[str, Any]) -> dict[str, Any] | None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()
    if "id" not in message:
        return None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the bridge closed stdout")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("id") == message["id"]:
            return reply


def one_bridge(env: dict[str, str], stderr: Path, importtime: bool) -> tuple[float, int]:
    """Start a bridge, initialize, list its tools, settle; its VmRSS and tool count."""
    flags = ["-X", "importtime"] if importtime else []
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, *flags, "-m", "mailbox_mcp"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        _call(
            process,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"},
                },
            },
        )
        _call(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = _call(process, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert tools is not None
        count = len(tools["result"]["tools"])
        time.sleep(SETTLE_SECONDS)
        return vm_rss_mib(process.pid), count
    finally:
        process.terminate()
        process.wait(10)


def heaviest_packages(importtime_log: Path, top: int = 25) -> list[tuple[str, float]]:
    """Top-level packages by the import time of their own modules (ms), heaviest first."""
    totals: dict[str, float] = {}
    for line in importtime_log.read_text().splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        if own.strip().isdigit():
            package = name.strip().split(".")[0]
            totals[package] = totals.get(package, 0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pull", action="store_true", help="no gateway (pull mode)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modules", action="store_true", help="print what the bridge imported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-at-rest-") as tmp:
        workdir = Path(tmp)
        (workdir / "server").mkdir()
        with (
            ServerThread(server_settings(sqlite_url(workdir / "server"))) as server,
            FakeGateway(token=TOKEN) as gateway,
        ):
            me = register(server.url, "me")
            env = {
                "PATH": os.environ.get("PATH", ""),
                "MAILBOX_SERVER_URL": server.url,
                "MAILBOX_API_KEY": me.api_key,
            }
            if not args.pull:
                env |= {"OPENCLAW_GATEWAY_URL": gateway.url, "OPENCLAW_GATEWAY_TOKEN": TOKEN}
            figures = []
            for run in range(args.runs):
                state = workdir / f"state-{run}"
                rss, tools = one_bridge(
                    env | {"MAILBOX_STATE_DIR": str(state)}, workdir / f"stderr-{run}", False
                )
                figures.append(rss)
                print(f"run {run + 1}: VmRSS {rss:.1f} MiB ({tools} tools)", flush=True)
            mode = "pull" if args.pull else "push"
            print(f"{mode} mode, at rest: median VmRSS {statistics.median(figures):.1f} MiB")
            if args.modules:
                log = workdir / "importtime"
                one_bridge(env | {"MAILBOX_STATE_DIR": str(workdir / "state-x")}, log, True)
                for package, ms in heaviest_packages(log):
                    print(f"  {package:<28} {ms:8.1f} ms (own modules' import time)")


if __name__ == "__main__":
    main()
