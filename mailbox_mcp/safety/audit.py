"""The hash-chained audit log (contract, section 9): what peers' messages caused.

`MAILBOX_STATE_DIR/audit.jsonl` holds one compact JSON object per event::

    {"n": 7, "at": "2026-12-02T07:38:53.123Z", "event": "replied", "peer": "bob",
     "text_hmac": "…", "message_id": "…", "prev": "<sha256 of line 6>"}

The text itself is never written, only HMAC-SHA256 under a key from the state dir: the
owner can confirm that a given text was sent, nobody without the key can test guesses.
Each line names the hash of the one before, and `audit.head` keeps the count and last
hash apart, so `verify` finds a line changed, removed or reordered, and a cut tail too.

Every bridge process of the agent writes here; they take `audit.lock` in turn.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from mailbox_mcp.safety import audit_files as files
from mailbox_mcp.safety.audit_check import AuditCheck, verify
from mailbox_mcp.safety.audit_files import Head

__all__ = ["EVENTS", "AuditCheck", "AuditLog", "raw_lines", "read_entries", "verify"]

log = logging.getLogger(__name__)

EVENTS = frozenset(
    {
        "injected",
        "sent",
        "replied",
        "held",
        "approved",
        "rejected",
        "expired",
        "blocked",
        "handle_refused",
        "autonomy_changed",
        "connect_requested",
        "connection_approved",
    }
)
# Keys every line has or may have; a caller's field may not take their place.
_RESERVED = frozenset({"n", "at", "event", "peer", "text_hmac", "prev"})
# Ids, names and reasons fit; anything longer is cut, so one event cannot bloat the log.
MAX_FIELD_CHARS = 200
_CUT = "…"
_MAX_INT = 2**63 - 1
_KEY_BYTES = 32
# A writer that died between append and head leaves a line or two behind; a tail longer
# than this is not a crash's, and is left for `verify` to report.
_MAX_ADOPT_BYTES = 64 * 1024


class AuditLog:
    """Appends events to the audit log of one state dir.

    A record costs a few hundred microseconds: each line is written with one unbuffered
    `write` (it survives the process dying at once) but not fsynced, so a power cut can
    lose the last lines, and `verify` then reports the head and log as out of step.
    Files are opened per record, because bridge processes come and go and the log must
    never be written through a stale descriptor.
    """

    def __init__(self, state_dir: Path, text_key: bytes) -> None:
        if len(text_key) != _KEY_BYTES:
            raise ValueError(f"the audit text key must be {_KEY_BYTES} bytes")
        self._dir = state_dir
        self._text_key = text_key
        self._files = files.Files(state_dir)
        self._dir_ready = False

    def record(
        self,
        event: str,
        *,
        peer: str | None = None,
        text: str | None = None,
        **fields: str | int | None,
    ) -> None:
        """Append one event. Fields that are None are left out; long strings are cut.

        Blocks while another process writes (a fraction of a millisecond); raises
        filelock.Timeout, a TimeoutError, if the lock stays taken for 10 s. ValueError for
        an unknown event, a field named like a line's own keys, or a value of another type.
        """
        body = self._body(event, peer, text, fields)
        if not self._dir_ready:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._dir_ready = True
        with self._files.locked():
            self._append(body)

    def read(self) -> list[dict[str, Any]]:
        """Every line of the log, in order (see `read_entries`)."""
        return read_entries(self._dir)

    def text_hmac(self, text: str) -> str:
        """What a line holds for `text`: the owner can check a text against the log."""
        data = text.encode("utf-8", "surrogatepass")
        return hmac.new(self._text_key, data, sha256).hexdigest()

    def _body(
        self, event: str, peer: str | None, text: str | None, fields: dict[str, str | int | None]
    ) -> dict[str, str | int]:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        body: dict[str, str | int] = {"event": event}
        if peer is not None:
            body["peer"] = _bounded("peer", peer)
        if text is not None:
            body["text_hmac"] = self.text_hmac(text)
        for name, value in fields.items():
            if name in _RESERVED:
                raise ValueError(f"{name!r} is set by the audit log itself")
            if value is not None:
                body[name] = _bounded(name, value)
        return body

    def _append(self, body: dict[str, str | int]) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | files.BINARY
        fd = os.open(self._files.log, flags, files.MODE)
        try:
            head, size = self._current_head(fd)
            # A log that does not end a line (damaged, not ours to cut) still gets whole lines.
            lead = b"\n" if size and files.read_at(fd, 1, size - 1) != b"\n" else b""
            at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            line = files.encode({"n": head.count + 1, "at": at, **body, "prev": head.last_hash})
            os.write(fd, lead + line + b"\n")
            size += len(lead) + len(line) + 1
        finally:
            os.close(fd)
        self._files.write_head(Head(head.count + 1, files.line_hash(line), size))

    def _current_head(self, fd: int) -> tuple[Head, int]:
        """The head to chain from, and the log's size once a crash's leftovers are settled."""
        size = os.fstat(fd).st_size
        try:
            head = self._files.read_head()
        except files.HeadDamaged as exc:
            log.warning("audit.head is damaged (%s): new lines start a new chain", exc)
            return files.EMPTY, size
        start = head or files.EMPTY
        if size == start.size:
            return start, size  # the usual case: nothing to read
        # No head with lines present: the very first record died before writing it, and
        # then only its one line may be taken; a deleted head is not silently rebuilt.
        adopted = _adopt(fd, start, size, max_lines=None if head else 1)
        if adopted is not None:
            return adopted, adopted.size
        # Chaining on from the head keeps whatever was done to the log where verify sees it.
        log.warning(
            "audit.jsonl does not match audit.head (%s lines recorded): "
            "`mailbox-mcp audit --verify` names the first bad line",
            head.count if head else "no head,",
        )
        return start, size


def _adopt(fd: int, head: Head, size: int, *, max_lines: int | None) -> Head | None:
    """The head after the lines a crashed writer appended, or None if the tail is not that.

    Bytes past the head's size are taken when they are whole lines chaining on from the
    head; a last line without its newline is cut back (its writer died mid-line).
    """
    extra_size = size - head.size
    if extra_size <= 0 or extra_size > _MAX_ADOPT_BYTES:
        return None
    extra = files.read_at(fd, extra_size, head.size)
    complete, newline, partial = extra.rpartition(b"\n")
    lines = complete.split(b"\n") if newline else []
    if max_lines is not None and len(lines) > max_lines:
        return None
    count, last = head.count, head.last_hash
    for line in lines:
        if not _chains(line, count + 1, last):
            return None
        count, last = count + 1, files.line_hash(line)
    # A writer's half line is the start of the line that came next; other bytes are not ours.
    start = b'{"n":%d,' % (count + 1)
    if partial and not (partial.startswith(start) or start.startswith(partial)):
        return None
    if partial:
        os.ftruncate(fd, size - len(partial))
        log.warning("audit.jsonl ended in a partial line (a writer died mid-line): cut it")
    if lines:
        log.warning("audit: adopted %d line(s) a writer appended before it died", len(lines))
    return Head(count, last, size - len(partial))


def _chains(line: bytes, n: int, prev: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("n") == n and entry.get("prev") == prev


def _bounded(name: str, value: str | int) -> str | int:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[: MAX_FIELD_CHARS - 1] + _CUT
    if isinstance(value, int) and -_MAX_INT <= value <= _MAX_INT:
        return value
    raise ValueError(f"audit field {name!r} must be a string or a 64-bit integer")


def raw_lines(state_dir: Path) -> list[str]:
    """The log's lines as stored (a last line without its newline included)."""
    data, _head = files.Files(state_dir).snapshot()
    if not data:
        return []
    # Split on newlines only, as the checker does (str.splitlines also splits on \r, \f, ...).
    lines = data.removesuffix(b"\n").split(b"\n")
    return [line.decode("ascii", "replace") for line in lines]


def read_entries(state_dir: Path) -> list[dict[str, Any]]:
    """Every line of the log, parsed; one that is not a JSON object comes back as
    `{"n": None, "unreadable": <its text, cut>}` so that a damaged log can still be shown."""
    entries: list[dict[str, Any]] = []
    for text in raw_lines(state_dir):
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"n": None, "unreadable": text[:MAX_FIELD_CHARS]}
        entries.append(entry)
    return entries
