"""CPU accounting for benchmarks: the server, the database, the load client, the rest.

On a shared 2-core machine a throughput figure alone says little: what the server
spent per message, and what the database and everything else on the box took
meanwhile, say whether the server or its neighbours were the limit. Linux /proc only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int | str) -> tuple[str, list[str]]:
    """The command name and the fields after it of /proc/PID/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    head, tail = raw.rsplit(")", 1)
    return head.split("(", 1)[1], tail.split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return sum(user_system_seconds(pid))


def user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system (kernel: sockets, wake-ups) CPU time of a process so far."""
    fields = _stat_fields(pid)[1]
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def tree_user_system_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and its children (uvicorn's workers)."""
    user, system = user_system_seconds(pid)
    for child in _children(pid):
        try:
            child_user, child_system = user_system_seconds(child)
        except (OSError, IndexError):
            continue  # gone meanwhile
        user, system = user + child_user, system + child_system
    return user, system


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with_children = task / "children"
        if with_children.exists():
            children += [int(c) for c in with_children.read_text().split()]
    return children


def cpu_of(pids: set[int]) -> dict[int, float]:
    """CPU seconds so far of each of these processes still alive."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except (OSError, IndexError):
            continue  # gone meanwhile
    return found


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle (nor waiting on I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during one measured interval."""

    server: float
    server_system: float
    database: float
    client: float
    machine: float
    wall: float

    @property
    def other(self) -> float:
        """What the rest of the machine used (other workers, the kernel's share elsewhere)."""
        return max(0.0, self.machine - self.server - self.database - self.client)

    def per_message(self, count: int) -> str:
        ms = 1000 / max(1, count)
        return (
            f"CPU per message: server {self.server * ms:.3f} ms"
            f" ({self.server_system * ms:.3f} of it in the kernel), "
            f"database {self.database * ms:.3f} ms, load client {self.client * ms:.3f} ms; "
            f"rest of the machine {self.other / self.wall:.2f} cores meanwhile "
            f"(machine busy {self.machine / self.wall:.2f} of {os.cpu_count()} cores)"
        )


class CpuMeter:
    """Start, run the load, stop: the CPU each party used in between.

    The database's share is that of the processes named at start and stop: the
    backends of the benchmark's own database and PostgreSQL's shared background
    processes, not the backends another worker on the machine keeps busy.
    """

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._database_pids: set[int] = set()

    def _sample(self) -> tuple[tuple[float, float], dict[int, float], float, float]:
        client = os.times()
        return (
            tree_user_system_seconds(self.server_pid),
            cpu_of(self._database_pids),
            client.user + client.system,
            machine_busy_seconds(),
        )

    def start(self, now: float, database_pids: set[int] | None = None) -> None:
        self._started = now
        self._database_pids = set(database_pids or ())
        self._before = self._sample()

    def stop(self, now: float, database_pids: set[int] | None = None) -> CpuUse:
        self._database_pids |= database_pids or set()
        server, database, client, machine = self._sample()
        server0, database0, client0, machine0 = self._before
        # A backend that appeared meanwhile (autovacuum) counts from zero.
        database_used = sum(cpu - database0.get(pid, 0.0) for pid, cpu in database.items())
        return CpuUse(
            server=sum(server) - sum(server0),
            server_system=server[1] - server0[1],
            database=database_used,
            client=client - client0,
            machine=machine - machine0,
            wall=now - self._started,
        )


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"
