"""What one audit record costs: `AuditLog.record` timed in one process.

    .venv/bin/python -m bench.audit_record                 # in a temporary dir under /tmp
    .venv/bin/python -m bench.audit_record --dir PATH      # on another file system
    .venv/bin/python -m bench.audit_record --records 5000

Prints the median, 90th and 99th percentile of one record, and of taking and
releasing the lock alone (filelock), which is most of it, and the CPU time each
takes on average: on a busy machine the wall-clock tail is mostly waiting for a CPU.
Each record opens the log, appends one line and replaces the head, as the bridge
does; nothing is fsynced.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mailbox_mcp.safety.audit import AuditLog
from mailbox_mcp.safety.audit_files import Files

WARMUP = 200


def timed(action: Callable[[int], None], count: int) -> tuple[list[float], float]:
    """Sorted wall-clock samples, and the mean CPU time, of `count` calls."""
    for i in range(WARMUP):
        action(i)
    samples = []
    cpu = time.process_time()
    for i in range(count):
        started = time.perf_counter()
        action(i)
        samples.append(time.perf_counter() - started)
    return sorted(samples), (time.process_time() - cpu) / count


def show(name: str, measured: tuple[list[float], float]) -> None:
    samples, cpu = measured

    def at(share: float) -> float:
        return samples[min(len(samples) - 1, int(share * len(samples)))] * 1e6

    print(
        f"{name:<12} median {at(0.5):6.0f} µs   p90 {at(0.9):6.0f} µs   p99 {at(0.99):6.0f} µs"
        f"   CPU {cpu * 1e6:4.0f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        state_dir = Path(scratch)
        log = AuditLog(state_dir, secrets.token_bytes(32))

        def record(i: int) -> None:
            log.record("replied", peer="bob", text=f"reply {i}", message_id=f"m-{i}", seq=i)

        show("record", timed(record, args.records))
        files = Files(state_dir)

        def lock_only(_i: int) -> None:
            with files.locked():
                pass

        show("lock alone", timed(lock_only, args.records))


if __name__ == "__main__":
    main()
