"""pgpy for published keys, in a worker process: never on the event loop, nor beside it.

pgpy is pure Python. The packet limits (`mailbox_mcp.e2e.key_packets`) keep one
parse to ~20 ms, but ten clients can keep a parser busy all the time, and in a
worker thread pgpy then holds the GIL whenever the event loop wakes up: the
loop waits up to a switch interval (5 ms) for every step of every request.
Measured with `bench/openpgp_register.py` (10 clients, the heaviest key the
limits allow): `/health` p99 155 ms with a thread, 21-31 ms with a process,
which the OS schedules on the other core (94 ms once, with the machine's load
average at 4).

The worker is this module run as a program (`python -m
server.services.openpgp_parse`), started on first use and kept: it reads
length-prefixed keys on stdin and answers one JSON line each. A plain pipe
rather than multiprocessing, because uvicorn ends on SIGTERM by raising the
signal again, so no exit handler runs: a pool's worker would outlive the
server, while this one reads end-of-file and exits. It costs ~30 MB.

Bounds: one parse at a time (one thread talks to the worker), at most
MAX_WAITING waiting; a parse gets PARSE_SECONDS before the worker is killed
(pgpy cannot be interrupted otherwise; a new worker starts for the next key)
and a request waits at most WAIT_SECONDS in all. Beyond any of them the
answer is 503 `overloaded` with Retry-After.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import select
import signal
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from ..errors import InvalidInput, RateLimited

__all__ = [
    "MAX_WAITING",
    "PARSE_SECONDS",
    "WAIT_SECONDS",
    "WORKER",
    "KeyParser",
    "fingerprint_of",
]

MAX_WAITING = 32
# The heaviest key the packet limits allow takes pgpy ~20 ms: room for a loaded machine.
PARSE_SECONDS = 2.0
WAIT_SECONDS = 10.0
WORKER = (sys.executable, "-m", "server.services.openpgp_parse")
_FIELD = "openpgp_public_key"


def fingerprint_of(data: bytes) -> tuple[str | None, str | None]:
    """(fingerprint, None) for a binary public key, else (None, what is wrong)."""
    with warnings.catch_warnings():
        # pgpy 0.6 warns about cryptography APIs it uses; that is not our caller's problem.
        warnings.simplefilter("ignore")
        import pgpy

        try:
            key, _ = pgpy.PGPKey.from_blob(data)
        except Exception as exc:  # pgpy raises a wide range of types on bad input
            return None, f"{_FIELD} is not an OpenPGP key: {exc}"
    if not key.is_public:
        return None, f"{_FIELD} is a PRIVATE key: publish only the public key"
    return str(key.fingerprint).replace(" ", ""), None


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: a 4-octet length and a key in, one JSON line out, until EOF."""
    while len(header := requests.read(4)) == 4:
        fingerprint, problem = fingerprint_of(requests.read(int.from_bytes(header, "big")))
        answers.write(json.dumps({"fingerprint": fingerprint, "problem": problem}).encode())
        answers.write(b"\n")
        answers.flush()


class _WorkerGone(Exception):
    pass


class KeyParser:
    """The worker and the parses waiting for it; shared by all event loops of a process."""

    def __init__(
        self,
        *,
        command: tuple[str, ...] = WORKER,
        max_waiting: int = MAX_WAITING,
        parse_seconds: float = PARSE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self._command = command
        self._max_waiting = max_waiting
        self._parse_seconds = parse_seconds
        self._wait_seconds = wait_seconds
        self._talker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openpgp-parse")
        self._worker: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # the tests run several servers, each with its loop
        self._waiting = 0

    async def fingerprint(self, data: bytes) -> str:
        """The key's fingerprint. Raises InvalidInput (422) for what pgpy cannot read or a
        private key, RateLimited (503 overloaded) when the parser is too busy or too slow."""
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise _overloaded()
            self._waiting += 1
        try:
            exchange = asyncio.wrap_future(self._talker.submit(self._exchange, data))
            answer = await asyncio.wait_for(exchange, self._wait_seconds)
        except (TimeoutError, _WorkerGone):
            raise _overloaded() from None
        finally:
            with self._lock:
                self._waiting -= 1
        if answer.get("fingerprint") is None:
            raise InvalidInput(answer.get("problem") or f"{_FIELD} is not an OpenPGP key")
        return str(answer["fingerprint"])

    def _exchange(self, data: bytes) -> dict[str, str | None]:
        """In the talker thread: one key to the worker and its answer, or _WorkerGone."""
        worker = self._running_worker()
        assert worker.stdin is not None and worker.stdout is not None
        try:
            worker.stdin.write(len(data).to_bytes(4, "big") + data)
            worker.stdin.flush()
            ready, _, _ = select.select([worker.stdout], [], [], self._parse_seconds)
            line = worker.stdout.readline() if ready else b""
            answer = json.loads(line) if line else None
        except (OSError, ValueError):
            answer = None
        if not isinstance(answer, dict):  # too slow, dead or garbled: a new one next time
            self._stop_worker()
            raise _WorkerGone
        return answer

    def _running_worker(self) -> subprocess.Popen[bytes]:
        if self._worker is None or self._worker.poll() is not None:
            self._worker = subprocess.Popen(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        return self._worker

    def _stop_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                if pipe is not None:
                    pipe.close()

    def close(self) -> None:
        """Stop the worker and the talker thread (a stopped server's worker exits anyway)."""
        self._talker.shutdown(wait=True, cancel_futures=True)  # then nothing else talks to it
        self._stop_worker()


def _overloaded() -> RateLimited:
    return RateLimited(
        "too many OpenPGP keys are being published right now; retry shortly",
        code="overloaded",
        retry_after=1,
        status_code=503,
    )


def default_parser() -> KeyParser:
    """The process's parser, stopped at a normal exit."""
    parser = KeyParser()
    atexit.register(parser.close)
    return parser


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server; EOF ends us
    serve(sys.stdin.buffer, sys.stdout.buffer)
