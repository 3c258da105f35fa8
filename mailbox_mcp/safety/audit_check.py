"""`verify`: is the audit log as its writers left it? If not, the first bad line, in words.

Every line must parse, be numbered 1, 2, 3, … in file order and name the sha256 of the
line before it; the head must record the last line's number and hash and the log's size.
A line's number and its link tell apart what happened: a number that skips ahead is a
removal, one found later in the file a reordering, a broken link with the right number
an edit. The head catches what the chain alone cannot: a cut tail, an edited last line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mailbox_mcp.safety import audit_files as files
from mailbox_mcp.safety.audit_files import GENESIS, Head, HeadDamaged


@dataclass(frozen=True)
class AuditCheck:
    ok: bool
    lines: int
    first_bad_line: int | None  # 1-based
    problem: str  # for a person: what is wrong, or "intact"


@dataclass(frozen=True)
class _Line:
    hash: str
    n: int | None  # None when the line cannot be read
    prev: str | None
    damage: str | None  # why it cannot be read


def verify(state_dir: Path) -> AuditCheck:
    """Check the log in `state_dir` against its chain and its head."""
    data, head_raw = files.Files(state_dir).snapshot()
    return check(data, head_raw)


def check(data: bytes | None, head_raw: bytes | None) -> AuditCheck:
    """The check of a log's and a head's bytes (None for a missing file)."""
    body = data or b""
    complete, newline, partial = body.rpartition(b"\n")
    lines = [_parse(raw) for raw in complete.split(b"\n")] if newline else []
    found: tuple[int | None, str] | None
    try:
        head = None if head_raw is None else files.parse_head(head_raw)
    except HeadDamaged as exc:
        found = _in_chain(lines, None) or (None, f"the head ({files.HEAD_NAME}) is damaged: {exc}")
    else:
        found = (
            _in_chain(lines, head)
            or _against_head(lines, len(body) - len(partial), head, log_missing=data is None)
            or _cut_short(len(lines), partial)
        )
    if found is None:
        return AuditCheck(ok=True, lines=len(lines), first_bad_line=None, problem="intact")
    line, problem = found
    return AuditCheck(ok=False, lines=len(lines), first_bad_line=line, problem=problem)


def _in_chain(lines: list[_Line], head: Head | None) -> tuple[int | None, str] | None:
    expected_prev = GENESIS
    for i, line in enumerate(lines, start=1):
        if line.damage is not None:
            return i, f"line {i} was changed: {line.damage}"
        if line.n != i:
            return i, _misnumbered(lines, i, expected_prev)
        if line.prev != expected_prev:
            return _broken_link(lines, i, head)
        expected_prev = line.hash
    return None


def _misnumbered(lines: list[_Line], i: int, expected_prev: str) -> str:
    line = lines[i - 1]
    number = line.n
    assert number is not None
    if line.prev == expected_prev:  # still linked to the line before: only its number moved
        return f"line {i} was changed: it is numbered {number}"
    if any(later.n == i for later in lines[i:]):
        return (
            f"lines were reordered: line {i} holds the line numbered {number}, and the line "
            f"numbered {i} comes later"
        )
    if number > i:
        missing = f"line {i} was" if number == i + 1 else f"lines {i} to {number - 1} were"
        return f"{missing} removed: the line found in its place is numbered {number}"
    if number == 1 and line.prev == GENESIS:
        return (
            f"line {i} starts the log over at number 1: the head was lost or damaged when it "
            "was written, or the log was pieced together from two"
        )
    return f"line {i} is out of order: it is numbered {number}, which came before (reordered)"


def _broken_link(lines: list[_Line], i: int, head: Head | None) -> tuple[int | None, str]:
    """Line i does not name the hash of line i-1: which of the two was changed?"""
    if i == 1:
        return 1, "line 1 was changed: it does not start the chain"
    # An edited line i-1 leaves line i intact, so what follows line i still names its hash;
    # an edited line i (its link) changes its hash, so what follows names another.
    if i < len(lines):
        confirmed: bool | None = lines[i].prev == lines[i - 1].hash
    elif head is not None and head.count == i:
        confirmed = head.last_hash == lines[i - 1].hash
    else:
        confirmed = None
    if confirmed:
        return i - 1, f"line {i - 1} was changed: line {i} records a different hash for it"
    if confirmed is None:
        return i - 1, f"line {i - 1} or line {i} was changed: they do not link up"
    return i, f"line {i} was changed: it does not link to line {i - 1}"


def _against_head(
    lines: list[_Line], size: int, head: Head | None, *, log_missing: bool
) -> tuple[int | None, str] | None:
    count = len(lines)
    if head is None:
        if not count:
            return None
        return (
            None,
            f"the head ({files.HEAD_NAME}) is missing while the log has {_lines(count)}: "
            "it was deleted, and without it a cut tail cannot be seen",
        )
    if log_missing and head.count:
        return 1, f"the log ({files.LOG_NAME}) is missing: the head records {_lines(head.count)}"
    hashes = [GENESIS] + [line.hash for line in lines]
    named = hashes.index(head.last_hash) if head.last_hash in hashes else None
    if named is not None and named != head.count:
        return (
            None,
            f"the head was changed: it records {_lines(head.count)}, and the hash of line {named}",
        )
    if named is None and head.count > count:
        cut = (
            f"line {head.count} was"
            if head.count == count + 1
            else (f"lines {count + 1} to {head.count} were")
        )
        return (
            count + 1,
            f"{cut} removed from the end (cut tail): the log ends at line {count}, "
            f"the head records {head.count}",
        )
    if named is None:
        return (
            head.count or None,
            f"line {head.count} was changed: the head records a different hash for it "
            "(or the head was changed)",
        )
    if head.count < count:
        extra = (
            f"line {count} comes"
            if count == head.count + 1
            else (f"lines {head.count + 1} to {count} come")
        )
        return (
            head.count + 1,
            f"{extra} after the last line the head records: added to the log, or written by a "
            "bridge that stopped before it updated the head (the next record takes them in)",
        )
    if head.size != size:
        return (
            None,
            f"the head was changed: it records a log of {head.size} bytes, the log has {size}",
        )
    return None


def _cut_short(count: int, partial: bytes) -> tuple[int | None, str] | None:
    if not partial:
        return None
    return (
        count + 1,
        f"line {count + 1} is cut short (it has no line end): a writer stopped in the middle "
        "of it, or the file was cut (the next record removes a writer's half line)",
    )


def _parse(raw: bytes) -> _Line:
    digest = files.line_hash(raw)
    try:
        entry = json.loads(raw)
    except ValueError:
        return _Line(digest, None, None, "it is not valid JSON")
    if not isinstance(entry, dict):
        return _Line(digest, None, None, "it is not a JSON object")
    n, prev = entry.get("n"), entry.get("prev")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return _Line(digest, None, None, "it has no line number")
    if not files.is_hash(prev):
        return _Line(digest, None, None, "it has no hash of the line before")
    if not isinstance(entry.get("event"), str) or not isinstance(entry.get("at"), str):
        return _Line(digest, None, None, "it has no event or time")
    return _Line(digest, n, prev, None)


def _lines(count: int) -> str:
    return "1 line" if count == 1 else f"{count} lines"
