"""The audit log's files in MAILBOX_STATE_DIR, shared by its writer and its checker.

    audit.jsonl  one compact JSON object per line, each naming the sha256 of the line before
    audit.head   {"count", "last_hash", "size"} of the log as last written, one fixed-width
                 record written in place (see write_head)
    audit.lock   the lock every bridge process takes to read the head, append and write the head

All are 0600. The lock is `filelock` (flock on Unix), which the kernel releases when
a holder dies, so a crashed writer never leaves the others waiting.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from filelock import FileLock

from mailbox_mcp.errors import BridgeError

LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head"
LOCK_NAME = "audit.lock"
GENESIS = "0" * 64  # the `prev` of line 1
# Room for any count and size (up to 20 digits each), the hash and the keys.
_HEAD_WIDTH = 160
MODE = 0o600
# os.open's flags for these files: Windows opens in text mode (\n written as \r\n) without
# O_BINARY, which would break the hashes that chain the lines.
BINARY = getattr(os, "O_BINARY", 0)
# Writers hold the lock for well under a millisecond: polling every millisecond costs little,
# where filelock's default of 50 ms would stall every writer that meets another.
_POLL_SECONDS = 0.001
# Long enough for any live holder; flock dies with its holder, so only a hung process waits it out.
_LOCK_TIMEOUT_SECONDS = 10.0


def read_at(fd: int, size: int, offset: int) -> bytes:
    """`os.pread`, which Windows lacks; there, a seek and a read on a descriptor that
    its caller alone uses. (Descriptors from `os.open` are never inherited, PEP 446.)"""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def write_at(fd: int, data: bytes, offset: int) -> None:
    """`os.pwrite` where there is one (see `read_at`)."""
    if hasattr(os, "pwrite"):
        os.pwrite(fd, data, offset)
        return
    os.lseek(fd, offset, os.SEEK_SET)
    os.write(fd, data)


@dataclass(frozen=True)
class Head:
    count: int
    last_hash: str
    size: int  # bytes of the log up to and including the last line's newline


EMPTY = Head(count=0, last_hash=GENESIS, size=0)


class HeadDamaged(BridgeError):
    """audit.head exists but does not hold a head."""


def line_hash(line: bytes) -> str:
    """The hash the next line names: sha256 of the line's exact bytes, without the newline."""
    return hashlib.sha256(line).hexdigest()


def encode(entry: dict[str, Any]) -> bytes:
    # ASCII-only JSON: newlines, every control character and every non-ASCII line separator
    # (U+0085, U+2028, ...) come out as escapes, so one entry is always one line.
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class Files:
    """The paths of one state dir's audit files, joined once: a record runs in microseconds."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.log = str(state_dir / LOG_NAME)
        self.head = str(state_dir / HEAD_NAME)
        self.lock = FileLock(state_dir / LOCK_NAME, mode=MODE)

    def locked(self) -> Any:
        """`with files.locked():` holds the lock; filelock.Timeout (a TimeoutError) after 10 s."""
        return self.lock.acquire(timeout=_LOCK_TIMEOUT_SECONDS, poll_interval=_POLL_SECONDS)

    def read_head(self) -> Head | None:
        """The head, None when there is none; HeadDamaged when the file holds something else."""
        raw = _read(self.head)
        return None if raw is None else parse_head(raw)

    def write_head(self, head: Head) -> None:
        """Write the head over the old one, in place: one `pwrite` of a fixed width.

        No new file and no rename: replacing a file makes ext4 flush the new one first
        (auto_da_alloc), and every rename is a journal commit, which under disk load
        took milliseconds, now and then hundreds. A write of one fixed-width record into
        blocks the file already has is a page-cache copy. Readers hold the lock, so
        none sees it half written; a power cut in the middle of it could tear it, and
        `verify` would then say the head is damaged (the safe side). Callers hold the lock.
        """
        data = encode({"count": head.count, "last_hash": head.last_hash, "size": head.size})
        # Padded to one width, so that each head covers the last one exactly.
        data = data.ljust(_HEAD_WIDTH) + b"\n"
        fd = os.open(self.head, os.O_RDWR | os.O_CREAT | BINARY, MODE)
        try:
            write_at(fd, data, 0)
            if os.fstat(fd).st_size > len(data):
                os.ftruncate(fd, len(data))  # a head written by an older version
        finally:
            os.close(fd)

    def snapshot(self) -> tuple[bytes | None, bytes | None]:
        """The log's and the head's bytes (None for a missing file), as a writer left them.

        Under the lock, so no line is seen half written and the head matches the log; without
        it only when the lock file cannot be made (a state dir someone else owns, read-only).
        """
        if not self.dir.is_dir():
            return None, None
        try:
            with self.locked():
                return _read(self.log), _read(self.head)
        except PermissionError:
            return _read(self.log), _read(self.head)


def parse_head(raw: bytes) -> Head:
    try:
        data = json.loads(raw)
    except ValueError:
        raise HeadDamaged("it is not JSON") from None
    if not isinstance(data, dict):
        raise HeadDamaged("it is not a JSON object")
    count, last_hash, size = data.get("count"), data.get("last_hash"), data.get("size")
    if not _is_count(count) or not _is_count(size):
        raise HeadDamaged("its count or size is not a whole number")
    if not is_hash(last_hash):
        raise HeadDamaged("its last_hash is not a sha256")
    return Head(count=count, last_hash=last_hash, size=size)


def is_hash(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | BINARY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
