"""The hash-chained audit log: what it writes, what `verify` catches, several writers, crashes.

Tampering is done the way a person would: editing, deleting or swapping lines of
audit.jsonl, and deleting or editing audit.head. Writers that die are real processes
that exit in the middle of a record.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbox_mcp.safety.audit import EVENTS, MAX_FIELD_CHARS, AuditLog, verify
from mailbox_mcp.safety.audit_check import check as check_bytes
from mailbox_mcp.safety.audit_cli import add_audit_parser, run_audit
from mailbox_mcp.settings import BridgeSettings

KEY = secrets.token_bytes(32)
PROCESS_DEADLINE_SECONDS = 60


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def write_log(state_dir: Path, count: int) -> AuditLog:
    log = AuditLog(state_dir, KEY)
    for i in range(count):
        log.record("sent", peer="bob", text=f"message {i}", message_id=f"m-{i}", seq=i)
    return log


def log_lines(state_dir: Path) -> list[bytes]:
    return (state_dir / "audit.jsonl").read_bytes().splitlines()


def rewrite(state_dir: Path, lines: list[bytes]) -> None:
    (state_dir / "audit.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def head(state_dir: Path) -> dict[str, object]:
    return json.loads((state_dir / "audit.head").read_bytes())


# -- what a line holds -----------------------------------------------------------------


def test_an_absent_log_with_no_head_is_intact_with_no_lines(state_dir: Path) -> None:
    check = verify(state_dir)
    assert (check.ok, check.lines, check.first_bad_line, check.problem) == (True, 0, None, "intact")
    state_dir.mkdir()
    assert verify(state_dir).ok


def test_many_records_verify_as_intact_and_read_back_in_order(state_dir: Path) -> None:
    log = write_log(state_dir, 300)
    check = verify(state_dir)
    assert (check.ok, check.lines, check.first_bad_line) == (True, 300, None)
    entries = log.read()
    assert [e["n"] for e in entries] == list(range(1, 301))
    assert [e["seq"] for e in entries] == list(range(300))
    assert head(state_dir)["count"] == 300


def test_a_line_holds_number_time_event_peer_text_hash_fields_and_the_previous_hash(
    state_dir: Path,
) -> None:
    log = AuditLog(state_dir, KEY)
    log.record("replied", peer="bob", text="hello", message_id="m-1", held_id=None, seq=7)
    log.record("autonomy_changed", level="bounded")
    first, second = log_lines(state_dir)
    entry = json.loads(first)
    assert list(entry) == ["n", "at", "event", "peer", "text_hmac", "message_id", "seq", "prev"]
    assert entry["n"] == 1 and entry["event"] == "replied" and entry["peer"] == "bob"
    assert entry["text_hmac"] == hmac.new(KEY, b"hello", hashlib.sha256).hexdigest()
    assert entry["prev"] == "0" * 64
    at = datetime.fromisoformat(entry["at"])
    assert at.utcoffset() is not None and at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60
    assert first == json.dumps(entry, separators=(",", ":")).encode()  # compact
    later = json.loads(second)
    assert later["n"] == 2 and later["prev"] == hashlib.sha256(first).hexdigest()
    assert "peer" not in later and "text_hmac" not in later  # None and absent are left out


def test_an_unknown_event_or_a_field_that_takes_a_line_key_is_refused(state_dir: Path) -> None:
    log = AuditLog(state_dir, KEY)
    with pytest.raises(ValueError, match="unknown audit event"):
        log.record("deleted_everything", peer="bob")
    for reserved in ("n", "at", "text_hmac", "prev"):
        with pytest.raises(ValueError, match="set by the audit log"):
            log.record("sent", **{reserved: "x"})
    with pytest.raises(ValueError, match="64-bit integer"):
        log.record("sent", score=0.5)
    with pytest.raises(ValueError, match="bytes"):
        AuditLog(state_dir, b"short")
    assert verify(state_dir).lines == 0
    assert sorted(EVENTS) == sorted(
        {"injected", "sent", "replied", "held", "approved", "rejected", "expired", "blocked"}
        | {"handle_refused", "autonomy_changed", "connect_requested", "connection_approved"}
    )


def test_long_values_are_cut_and_line_breaks_never_split_a_line(state_dir: Path) -> None:
    log = AuditLog(state_dir, KEY)
    breaks = "a\nb\rc\u2028d\u2029e\x85f\x0bg\x0ch\x1ci\x00j"
    log.record("blocked", peer="x" * 5000, reason=breaks, kind="y" * 5000)
    lines = (state_dir / "audit.jsonl").read_bytes()
    assert lines.count(b"\n") == 1 and lines.endswith(b"\n")
    assert all(32 <= byte < 127 for byte in lines[:-1])  # escaped: no separator of any kind
    (entry,) = log.read()
    assert entry["reason"] == breaks
    assert len(entry["peer"]) == MAX_FIELD_CHARS and len(entry["kind"]) == MAX_FIELD_CHARS
    assert verify(state_dir).ok


def test_the_text_itself_never_reaches_the_files(state_dir: Path) -> None:
    text = "the launch code is swordfish-4471"
    log = AuditLog(state_dir, KEY)
    log.record("replied", peer="bob", text=text)
    log.record("held", peer="bob", text=text)
    stored = b"".join(p.read_bytes() for p in state_dir.iterdir() if p.is_file())
    assert b"swordfish" not in stored and b"launch code" not in stored
    assert log.read()[0]["text_hmac"] == log.text_hmac(text)
    assert AuditLog(state_dir, secrets.token_bytes(32)).text_hmac(text) != log.text_hmac(text)


def test_the_log_and_its_head_are_for_the_owner_only(state_dir: Path) -> None:
    write_log(state_dir, 3)
    for name in ("audit.jsonl", "audit.head", "audit.lock"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name


# -- what verify catches ---------------------------------------------------------------


@pytest.mark.parametrize("edited", [1, 5, 10])
def test_an_edited_line_is_named(state_dir: Path, edited: int) -> None:
    write_log(state_dir, 10)
    lines = log_lines(state_dir)
    lines[edited - 1] = lines[edited - 1].replace(b'"peer":"bob"', b'"peer":"eve"')
    rewrite(state_dir, lines)
    check = verify(state_dir)
    assert not check.ok
    assert check.first_bad_line == edited
    assert "changed" in check.problem


def test_an_edited_link_is_blamed_on_its_own_line(state_dir: Path) -> None:
    write_log(state_dir, 6)
    lines = log_lines(state_dir)
    entry = json.loads(lines[3])
    entry["prev"] = "f" * 64
    lines[3] = json.dumps(entry, separators=(",", ":")).encode()
    rewrite(state_dir, lines)
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 4)
    assert "changed" in check.problem


def test_a_line_removed_from_the_middle_is_named(state_dir: Path) -> None:
    write_log(state_dir, 10)
    lines = log_lines(state_dir)
    del lines[4]
    rewrite(state_dir, lines)
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 5)
    assert "removed" in check.problem


def test_a_removed_last_line_is_caught_through_the_head(state_dir: Path) -> None:
    write_log(state_dir, 10)
    rewrite(state_dir, log_lines(state_dir)[:-1])
    check = verify(state_dir)
    assert (check.ok, check.lines, check.first_bad_line) == (False, 9, 10)
    assert "cut tail" in check.problem


def test_two_swapped_lines_are_named_as_reordered(state_dir: Path) -> None:
    write_log(state_dir, 10)
    lines = log_lines(state_dir)
    lines[6], lines[7] = lines[7], lines[6]
    rewrite(state_dir, lines)
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 7)
    assert "reordered" in check.problem


@pytest.fixture(scope="module")
def twelve_lines(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes]:
    state_dir = tmp_path_factory.mktemp("twelve")
    write_log(state_dir, 12)
    return log_lines(state_dir), (state_dir / "audit.head").read_bytes()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_edit_removal_swap_or_cut_is_caught_at_its_line(
    twelve_lines: tuple[list[bytes], bytes], data: st.DataObject
) -> None:
    lines, head_raw = list(twelve_lines[0]), twelve_lines[1]
    how = data.draw(st.sampled_from(["edit", "remove", "swap", "cut"]))
    at = data.draw(st.integers(1, 11 if how == "swap" else 12))
    if how == "edit":
        lines[at - 1] = lines[at - 1].replace(b"message", b"MESSAGE")
    elif how == "remove":
        del lines[at - 1]
    elif how == "swap":
        lines[at - 1], lines[at] = lines[at], lines[at - 1]
    else:
        del lines[at - 1 :]
    result = check_bytes(b"".join(line + b"\n" for line in lines), head_raw)
    assert (result.ok, result.first_bad_line) == (False, at), result.problem


def test_a_missing_log_under_a_head_that_records_lines_fails(state_dir: Path) -> None:
    write_log(state_dir, 3)
    (state_dir / "audit.jsonl").unlink()
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 1)
    assert "missing" in check.problem


def test_a_deleted_head_fails_while_the_log_has_lines(state_dir: Path) -> None:
    write_log(state_dir, 4)
    (state_dir / "audit.head").unlink()
    check = verify(state_dir)
    assert not check.ok
    assert "head" in check.problem and "missing" in check.problem


@pytest.mark.parametrize(
    ("field", "value", "first_bad_line"),
    [("count", 3, None), ("count", 5, None), ("last_hash", "a" * 64, 4), ("size", 1, None)],
)
def test_an_edited_head_fails(
    state_dir: Path, field: str, value: object, first_bad_line: int | None
) -> None:
    write_log(state_dir, 4)
    edited = head(state_dir) | {field: value}
    (state_dir / "audit.head").write_text(json.dumps(edited))
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, first_bad_line)


def test_a_garbled_head_is_reported_as_damaged(state_dir: Path) -> None:
    write_log(state_dir, 2)
    (state_dir / "audit.head").write_text("{not json")
    check = verify(state_dir)
    assert not check.ok and "damaged" in check.problem


def test_a_line_that_is_not_json_is_named_and_still_shown(state_dir: Path) -> None:
    log = write_log(state_dir, 3)
    lines = log_lines(state_dir)
    lines[1] = b"garbage \x1b[31m"
    rewrite(state_dir, lines)
    assert verify(state_dir).first_bad_line == 2
    assert log.read()[1] == {"n": None, "unreadable": "garbage \x1b[31m"}


def test_records_after_tampering_keep_the_tampering_visible(state_dir: Path) -> None:
    log = write_log(state_dir, 6)
    rewrite(state_dir, log_lines(state_dir)[:-2])  # a cut tail, then life goes on
    log.record("sent", peer="bob")
    log.record("sent", peer="bob")
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 5)
    assert "removed" in check.problem


# -- several writers -------------------------------------------------------------------

WRITER = """
import sys
import threading
from pathlib import Path
from mailbox_mcp.safety.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), bytes(32))
print("ready", flush=True)
sys.stdin.readline()  # all start together
for seq in range(int(sys.argv[3])):
    log.record("sent", peer=sys.argv[2], seq=seq)
"""


def test_four_processes_writing_at_once_leave_one_intact_chain(state_dir: Path) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(state_dir), f"writer-{i}", "200"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.close()
        for writer in writers:
            assert writer.wait(timeout=PROCESS_DEADLINE_SECONDS) == 0
    finally:
        for writer in writers:
            writer.kill()
            writer.wait(timeout=PROCESS_DEADLINE_SECONDS)
            if writer.stdout is not None:
                writer.stdout.close()
    check = verify(state_dir)
    assert (check.ok, check.lines) == (True, 800), check.problem
    entries = AuditLog(state_dir, KEY).read()
    for i in range(4):
        assert [e["seq"] for e in entries if e["peer"] == f"writer-{i}"] == list(range(200))


def test_threads_of_one_process_sharing_a_log_take_turns(state_dir: Path) -> None:
    log = AuditLog(state_dir, KEY)
    workers = [
        threading.Thread(target=lambda i=i: [log.record("sent", peer=f"t{i}") for _ in range(50)])
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=PROCESS_DEADLINE_SECONDS)
        assert not worker.is_alive()
    check = verify(state_dir)
    assert (check.ok, check.lines) == (True, 200), check.problem


# -- writers that die ------------------------------------------------------------------

DIES_BEFORE_HEAD = """
import os, sys
from pathlib import Path
from mailbox_mcp.safety import audit_files
from mailbox_mcp.safety.audit import AuditLog
audit_files.Files.write_head = lambda self, head: os._exit(3)  # dies holding the lock
AuditLog(Path(sys.argv[1]), bytes(32)).record("sent", peer="dying")
"""


def record_and_die(state_dir: Path) -> None:
    died = subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_HEAD, str(state_dir)],
        timeout=PROCESS_DEADLINE_SECONDS,
        check=False,
    )
    assert died.returncode == 3


def test_lines_a_dead_writer_left_before_its_head_are_taken_in_by_the_next_record(
    state_dir: Path,
) -> None:
    log = write_log(state_dir, 5)
    record_and_die(state_dir)
    record_and_die(state_dir)
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 6)  # until someone writes again
    log.record("sent", peer="bob")  # the lock was freed when the writer died
    check = verify(state_dir)
    assert (check.ok, check.lines) == (True, 8), check.problem
    assert [e.get("peer") for e in log.read()][5:] == ["dying", "dying", "bob"]


def test_a_first_record_that_died_before_its_head_is_taken_in(state_dir: Path) -> None:
    record_and_die(state_dir)
    assert not (state_dir / "audit.head").exists()
    assert not verify(state_dir).ok
    AuditLog(state_dir, KEY).record("sent", peer="bob")
    check = verify(state_dir)
    assert (check.ok, check.lines) == (True, 2), check.problem


def test_a_half_written_last_line_is_cut_back_by_the_next_record(state_dir: Path) -> None:
    log = write_log(state_dir, 3)
    record_and_die(state_dir)  # a whole line past the head, then half of another
    with (state_dir / "audit.jsonl").open("ab") as file:
        file.write(b'{"n":5,"at":"2026-')
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 4)  # the first line past the head
    log.record("sent", peer="bob")
    check = verify(state_dir)
    assert (check.ok, check.lines) == (True, 5), check.problem
    assert [json.loads(line)["n"] for line in log_lines(state_dir)] == [1, 2, 3, 4, 5]


def test_a_half_line_alone_is_named_as_cut_short(state_dir: Path) -> None:
    write_log(state_dir, 3)
    with (state_dir / "audit.jsonl").open("ab") as file:
        file.write(b'{"n":4,"at":"2026-')
    check = verify(state_dir)
    assert (check.ok, check.lines, check.first_bad_line) == (False, 3, 4)
    assert "cut short" in check.problem


def test_bytes_past_the_head_that_are_no_half_line_of_ours_are_kept(state_dir: Path) -> None:
    log = write_log(state_dir, 3)
    with (state_dir / "audit.jsonl").open("ab") as file:
        file.write(b"appended by hand")
    log.record("sent", peer="bob")
    assert b"appended by hand\n" in (state_dir / "audit.jsonl").read_bytes()
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 4)


def test_a_tampered_tail_is_not_taken_in(state_dir: Path) -> None:
    log = write_log(state_dir, 4)
    forged = json.loads(log_lines(state_dir)[-1]) | {"n": 5, "peer": "eve"}  # wrong link
    with (state_dir / "audit.jsonl").open("ab") as file:
        file.write(json.dumps(forged, separators=(",", ":")).encode() + b"\n")
    log.record("sent", peer="bob")
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 5)


def test_a_deleted_head_is_not_rebuilt_by_the_next_record(state_dir: Path) -> None:
    log = write_log(state_dir, 4)
    (state_dir / "audit.head").unlink()
    log.record("sent", peer="bob")
    check = verify(state_dir)
    assert (check.ok, check.first_bad_line) == (False, 5)
    assert "over at number 1" in check.problem


# -- the command line ------------------------------------------------------------------


def audit(state_dir: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_audit_parser(parser.add_subparsers(dest="command"))
    settings = BridgeSettings(MAILBOX_STATE_DIR=state_dir)
    return asyncio.run(run_audit(settings, parser.parse_args(["audit", *argv])))


def test_audit_prints_one_readable_line_per_event(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(state_dir, KEY)
    log.record("replied", peer="bob", text="secret words", message_id="m-1", session_id="s-1")
    log.record("blocked", peer="ev\u202eil\x1b[2J", kind="jwt")
    assert audit(state_dir) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].split()[:3] == ["1", log.read()[0]["at"], "replied"]
    assert "bob" in out[0] and "message_id=m-1" in out[0] and "session_id=s-1" in out[0]
    assert "secret" not in out[0] and "prev" not in out[0]
    assert "\u202e" not in out[1] and "\x1b" not in out[1]
    assert "ev\\u202eil\\u001b[2J" in out[1] and "kind=jwt" in out[1]


def test_audit_json_prints_the_raw_lines(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(state_dir, 3)
    assert audit(state_dir, "--json") == 0
    out = capsys.readouterr().out
    assert out.encode().splitlines() == log_lines(state_dir)


def test_audit_of_an_empty_state_dir_says_so(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert audit(state_dir) == 0
    assert "empty" in capsys.readouterr().out
    assert audit(state_dir, "--verify") == 0
    assert capsys.readouterr().out == "audit log intact: 0 lines\n"


def test_audit_verify_exits_0_for_an_intact_log_and_1_naming_the_first_bad_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(state_dir, 7)
    assert audit(state_dir, "--verify") == 0
    assert capsys.readouterr().out == "audit log intact: 7 lines\n"
    lines = log_lines(state_dir)
    del lines[2]
    rewrite(state_dir, lines)
    assert audit(state_dir, "--verify") == 1
    out = capsys.readouterr().out
    assert out.startswith("audit log NOT intact: line 3 was removed")
    assert audit(state_dir, "--verify", "--json") == 1
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "lines": 6,
        "first_bad_line": 3,
        "problem": verify(state_dir).problem,
    }


def test_audit_needs_no_key_and_makes_none(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_log(state_dir, 2)
    before = sorted(p.name for p in state_dir.iterdir())
    assert audit(state_dir, "--verify") == 0
    assert audit(state_dir) == 0
    assert "audit log intact: 2 lines\n" in capsys.readouterr().out
    assert sorted(p.name for p in state_dir.iterdir()) == before
    assert "peer-safety.key" not in before
