"""Verification codes are removed from connection-request notes before anyone sees them."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.services.code_scrub import CODE_REMOVED, scrub_codes
from server.services.connections import _CODE_PATTERN, normalise_code
from tests.helpers import Agent, Socket, register
from tests.servers import ServerThread

# --- the scrub function ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "XC-992",
        "xc-992",
        "xC-992",
        "x c - 9 9 2",
        "  XC-992  ",
        "XC -992",
        "X\tC\n-\n9 9\u00a02",  # any whitespace, not only spaces
        "ＸＣ－９９２",  # full-width letters, dash and digits
        "Xc –992",  # en dash
        "XC‐992",  # hyphen
        "XC‑992",  # non-breaking hyphen
        "XC‒992",  # figure dash
        "XC—992",  # em dash
        "XC―992",  # horizontal bar
        "XC−992",  # minus sign
        "XC﹣992",  # small hyphen-minus
        "X\u200bC-9\u200d92",  # zero-width characters
        "X\u0301C-992",  # a combining accent
        "ХС-992",  # Cyrillic letters drawn like Latin ones
        "ΧΚ-992",  # Greek ones
        "XC-٩٩٢",  # Arabic-Indic digits
        "ßS-123",  # approve's upper() makes ß "SS"
        "ﬀ-123",  # and the ligature "FF"
        "ABC-1234",  # approve would take its BC-123 part
    ],
)
def test_every_spelling_of_a_code_becomes_code_removed(spelling: str) -> None:
    assert scrub_codes(spelling).strip() == CODE_REMOVED


@pytest.mark.parametrize(
    ("note", "scrubbed"),
    [
        ("my code is XC-992, use it", f"my code is {CODE_REMOVED}, use it"),
        ("code:xc-992.", f"code:{CODE_REMOVED}."),
        ("first AB-123 then CD-456", f"first {CODE_REMOVED} then {CODE_REMOVED}"),
        ("id XYZ-98765!", f"id {CODE_REMOVED}!"),
        ("approve with x c - 9 9 2 please", f"approve with {CODE_REMOVED} please"),
    ],
)
def test_only_the_code_is_replaced_and_the_prose_around_it_stays(note: str, scrubbed: str) -> None:
    assert scrub_codes(note) == scrubbed


@pytest.mark.parametrize(
    "note",
    [
        "",
        "Hi Bob, Alice here. Shall we work on the Q3 report together?",
        "Meet at 10:30 in room 4-123, call +1 555-0100, version 2.0.1",
        "A-123, AB-12, AB12-3, AB_123, AB.123, 1A-123",
        "Grüße aus München — 日本語のメッセージ",
        CODE_REMOVED,
    ],
)
def test_a_note_without_a_code_is_left_as_it_was(note: str) -> None:
    assert scrub_codes(note) == note


def test_every_character_approve_reads_as_letters_is_read_so_here_too() -> None:
    """Approve upper-cases: a character whose upper case is ASCII letters ("ß" -> "SS",
    "ﬀ" -> "FF", "ı" -> "I") makes a code wherever approve would take one."""
    ascii_letters = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    accepted = 0
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        if 0xD800 <= point <= 0xDFFF or not set(char.upper()) <= ascii_letters:
            continue
        for candidate in (f"{char}-123", f"{char}X-123", f"X{char}-123"):
            if _approve_accepts(candidate):
                assert scrub_codes(candidate) == CODE_REMOVED, repr(candidate)
                accepted += 1
    assert accepted > 2 * 52  # the ASCII letters twice, and more


def _approve_accepts(text: str) -> bool:
    return _CODE_PATTERN.match(normalise_code(text)) is not None


_LETTERS = st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz")
_DIGITS = st.sampled_from("0123456789")
_GAPS = st.text(st.sampled_from(" \t\n\u00a0\u2009\u200b"), max_size=3)
_DASHES = st.sampled_from("-‐‑‒–—―−﹣－")
_PROSE = st.text(st.sampled_from("abc xyz,.!?\n"), max_size=20)


@st.composite
def _spelled_codes(draw: st.DrawFn) -> str:
    """A code with any case, gaps between any two characters and any dash."""
    chars = [draw(_LETTERS), draw(_LETTERS), draw(_DASHES), *(draw(_DIGITS) for _ in range(3))]
    return chars[0] + "".join(draw(_GAPS) + c for c in chars[1:])


@given(prose_before=_PROSE, code=_spelled_codes(), prose_after=_PROSE)
def test_a_code_in_any_spelling_inside_prose_is_removed(
    prose_before: str, code: str, prose_after: str
) -> None:
    note = f"{prose_before} {code} {prose_after}"
    scrubbed = scrub_codes(note)
    assert scrubbed.startswith(prose_before) and scrubbed.endswith(prose_after)
    assert CODE_REMOVED in scrubbed
    # Nothing approve would accept is left in any stretch of the result.
    assert not any(
        _approve_accepts(scrubbed[i:j])
        for i in range(len(scrubbed))
        for j in range(i + 6, min(len(scrubbed), i + 30) + 1)
    )


@given(st.text(max_size=60))
def test_whatever_the_note_nothing_approve_accepts_survives(note: str) -> None:
    scrubbed = scrub_codes(note)
    assert not any(
        _approve_accepts(scrubbed[i:j])
        for i in range(len(scrubbed))
        for j in range(i + 1, len(scrubbed) + 1)
    )


# --- every view of a request, on a real server --------------------------------------------


def _request(a: Agent, b: Agent, note: str) -> dict[str, object]:
    response = a.post("/connections/request", {"target_agent_name": b.name, "message": note})
    assert response.status_code == 201, response.text
    return response.json()


def test_no_view_of_a_request_shows_a_code_in_its_note(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    note = "Hi! Approve with Xc –992 so we can talk"
    expected = f"Hi! Approve with {CODE_REMOVED} so we can talk"
    with Socket(server.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        created = _request(a, b, note)
        frame = socket.recv_type("connection_request")
    assert frame["message"] == expected

    [incoming] = b.get("/connections/pending").json()["incoming"]
    assert incoming["message"] == expected
    [listed] = b.get("/inbox").json()["connection_requests"]
    assert listed["message"] == expected
    [outgoing] = a.get("/connections/pending").json()["outgoing"]
    assert outgoing["message"] == expected
    assert outgoing["verification_code"] == created["verification_code"]
    for view in (frame, incoming, listed, outgoing):
        assert "992" not in json.dumps(view["message"])


def test_a_requesters_own_code_forwarded_in_a_note_is_removed(server: ServerThread) -> None:
    """The attack the scrub is for: a requester hands its code to the target's agent."""
    a, b, c = (register(server.url, p) for p in ("req", "tgt", "other"))
    code = str(_request(a, c, "first")["verification_code"])
    _request(a, b, f"my owner's code is {code.lower()}")
    [incoming] = b.get("/connections/pending").json()["incoming"]
    assert incoming["message"] == f"my owner's code is {CODE_REMOVED}"
    assert code not in b.get("/inbox").text


def test_a_note_without_a_code_reaches_every_view_unchanged(server: ServerThread) -> None:
    a, b = register(server.url, "req"), register(server.url, "tgt")
    note = "Hello from A — room 4-123 at 10:30, v2.0"
    with Socket(server.ws_url) as socket:
        assert socket.auth(b.api_key)["type"] == "auth_ok"
        _request(a, b, note)
        frame = socket.recv_type("connection_request")
    assert frame["message"] == note
    assert b.get("/connections/pending").json()["incoming"][0]["message"] == note
    assert b.get("/inbox").json()["connection_requests"][0]["message"] == note
    assert a.get("/connections/pending").json()["outgoing"][0]["message"] == note
