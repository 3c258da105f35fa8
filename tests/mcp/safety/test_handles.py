"""Reply handles: bound to our agent, one peer, one conversation and the peer's epoch."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbox_mcp.errors import ConfigError
from mailbox_mcp.safety import handles, secret_key
from mailbox_mcp.safety.handles import HandleRefused

KEY = secret_key.derive(b"k" * 32, "reply-handle")
AGENT = "8f14e45f-ceea-467f-a0e6-7e3ee3bdc0e1"
SESSION = str(uuid.uuid4())
NOW = 1_800_000_000.0


def verify(token: str, *, key: bytes = KEY, agent: str = AGENT, epoch: int = 0, now: float = NOW):
    return handles.verify(token, key=key, agent_id=agent, epoch_of=lambda _peer: epoch, now=now)


def test_a_handle_names_the_peer_and_conversation_it_was_minted_for() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    assert token.startswith("mbxr_") and len(token) <= handles.MAX_CHARS
    handle = verify(token)
    assert (handle.peer, handle.session_id, handle.epoch) == ("alice-agent", SESSION, 0)


def test_the_longest_peer_name_and_session_id_stay_within_200_characters() -> None:
    token = handles.mint(KEY, AGENT, "a" * 32, "s" * 64, 2**32 - 1, now=NOW)
    assert len(token) <= 200
    assert verify(token, epoch=2**32 - 1).session_id == "s" * 64


def test_every_altered_character_is_refused_as_forged() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    for index in range(len(handles.PREFIX), len(token)):
        swapped = "A" if token[index] != "A" else "B"
        altered = token[:index] + swapped + token[index + 1 :]
        with pytest.raises(HandleRefused) as refused:
            verify(altered)
        assert refused.value.reason in ("forged", "malformed")


def test_a_handle_rewritten_for_another_peer_is_refused() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    raw = base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4))
    forged_raw = raw.replace(b"alice-agent", b"mallory-ag1")
    forged = "mbxr_" + base64.urlsafe_b64encode(forged_raw).rstrip(b"=").decode()
    with pytest.raises(HandleRefused) as refused:
        verify(forged)
    assert refused.value.reason == "forged"


def test_a_handle_minted_by_another_agent_or_key_is_refused() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    with pytest.raises(HandleRefused) as other_agent:
        verify(token, agent="another-agent-id")
    with pytest.raises(HandleRefused) as other_key:
        verify(token, key=secret_key.derive(b"x" * 32, "reply-handle"))
    assert other_agent.value.reason == other_key.value.reason == "forged"


def test_a_handle_expires_after_seven_days_and_not_before() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    assert verify(token, now=NOW + handles.TTL_SECONDS - 1).peer == "alice-agent"
    with pytest.raises(HandleRefused) as refused:
        verify(token, now=NOW + handles.TTL_SECONDS + 1)
    assert refused.value.reason == "expired"
    assert handles.TTL_SECONDS >= 7 * 24 * 3600


def test_a_handle_from_before_a_revoke_is_refused() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    with pytest.raises(HandleRefused) as refused:
        verify(token, epoch=1)
    assert refused.value.reason == "revoked"
    assert "revoked" in str(refused.value)


@pytest.mark.parametrize("junk", ["", "hello", "mbxr_", "mbxr_!!!!!!!!!!!!!!!!!!!!!!!", "x" * 500])
def test_text_that_is_not_a_handle_is_refused_as_malformed(junk: str) -> None:
    with pytest.raises(HandleRefused) as refused:
        verify(junk)
    assert refused.value.reason == "malformed"


def test_handle_shaped_text_is_scrubbed_in_any_case_and_with_invisible_characters() -> None:
    token = handles.mint(KEY, AGENT, "alice-agent", SESSION, 0, now=NOW)
    body = token[len(handles.PREFIX) :]
    for planted in (token, "MBXR_" + body, "m\u200bb\u200cx\u2060r_" + body, "mBxR_\ufeff" + body):
        cleaned = handles.scrub(f"use this: {planted} now")
        assert cleaned == f"use this: {handles.REMOVED} now"
        assert body not in cleaned


@given(st.text(max_size=300))
def test_scrubbed_text_holds_nothing_the_secret_scan_would_call_a_handle(text: str) -> None:
    assert handles.PATTERN.search(handles.scrub(text)) is None


def test_ordinary_text_passes_scrub_unchanged() -> None:
    text = "The mbxr_ prefix alone, a sub-bullet, and a URL https://example.com/mbx are fine."
    assert handles.scrub(text) == text


def test_the_key_file_is_made_once_0600_and_shared(tmp_path: Path) -> None:
    first = secret_key.load_or_create(tmp_path)
    assert secret_key.load_or_create(tmp_path) == first and len(first) == 32
    mode = stat.S_IMODE(os.stat(tmp_path / secret_key.FILE_NAME).st_mode)
    assert mode == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [secret_key.FILE_NAME]  # no temporaries


@pytest.mark.parametrize("content", ["", "\n", "abcd", "zz" * 32])
def test_an_empty_or_damaged_key_file_is_refused_never_used(tmp_path: Path, content: str) -> None:
    (tmp_path / secret_key.FILE_NAME).write_text(content)
    with pytest.raises(ConfigError, match="damaged"):
        secret_key.load_or_create(tmp_path)


def test_derived_keys_differ_by_purpose() -> None:
    assert secret_key.derive(b"k" * 32, "reply-handle") != secret_key.derive(b"k" * 32, "audit")


def test_bridges_starting_at_once_all_get_the_same_key(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from mailbox_mcp.safety import secret_key; "
        "print(secret_key.load_or_create(Path(sys.argv[1])).hex())"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(keys) == 1 and len(keys.pop()) == 64
