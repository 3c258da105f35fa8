"""Workers for `KeyParser(command=...)` that misbehave on purpose.

python -m tests.server.parse_faults pid               answers its pid as the fingerprint
python -m tests.server.parse_faults crash             exits at the first key
python -m tests.server.parse_faults hang              reads keys and never answers
python -m tests.server.parse_faults held STARTED RELEASE
    at each key: writes a byte to the FIFO STARTED, waits for the FIFO RELEASE to
    be written and closed, then parses for real
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys

from server.services.openpgp_parse import serve


def _command(*arguments: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "tests.server.parse_faults", *arguments)


PID, CRASH, HANG = _command("pid"), _command("crash"), _command("hang")


def held(started: str, release: str) -> tuple[str, ...]:
    return _command("held", started, release)


def _main(mode: str, *paths: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while len(header := requests.read(4)) == 4:
        data = requests.read(int.from_bytes(header, "big"))
        if mode == "crash":
            os._exit(1)
        if mode == "hang":
            continue
        if mode == "pid":
            answers.write(json.dumps({"fingerprint": str(os.getpid())}).encode() + b"\n")
            answers.flush()
            continue
        started, release = paths
        with open(started, "wb") as signal_started:
            signal_started.write(b"x")
        with open(release, "rb") as wait_for_release:
            wait_for_release.read()
        serve(io.BytesIO(header + data), answers)


if __name__ == "__main__":
    _main(*sys.argv[1:])
