"""The processes behind a gateway: which bridges run, and how much memory a tree uses.

Read from /proc, so that a test sees what OpenClaw really started (it starts stdio
MCP servers itself, lazily, one per session) rather than what it reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.openclaw.gateway import RealGateway


def bridge_pids(state_dir: Path) -> list[int]:
    """Stdio bridge processes running with ``MAILBOX_STATE_DIR=state_dir`` (not a
    ``mailbox-mcp serve`` or ``listen`` sharing that state dir)."""
    marker = f"MAILBOX_STATE_DIR={state_dir}".encode()
    found = []
    for pid in _pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        always_on = {b"serve", b"listen"} & set(cmdline.split(b"\0"))
        if marker in environ and b"mailbox_mcp" in cmdline and not always_on:
            found.append(pid)
    return sorted(found)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    return children


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size: RSS with each shared page split among its sharers (the
    Node relays share Node's code; summed RSS counts it once per process)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def gateway_pid(gateway: RealGateway) -> int:
    process = gateway._process
    assert process is not None
    return process.pid


def bridge_processes_under(gateway: RealGateway) -> list[int]:
    """Bridge processes OpenClaw started (in the gateway's process tree)."""
    found = []
    for pid in tree(gateway_pid(gateway)):
        try:
            if b"mailbox_mcp" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found
