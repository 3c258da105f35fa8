"""Peers' keys: asked of the directory once, then kept in memory and on disk, refreshed on demand.

The directory is a dict behind an async function that counts its calls, so
each test can say exactly when the network would have been used.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

import mailbox_wire as wire
from mailbox_mcp.e2e import keyring
from mailbox_mcp.e2e.keyring import PeerKeys
from mailbox_mcp.e2e.openpgp import (
    BadKeyError,
    PeerKeyMissing,
    PrivateKey,
    PublicKey,
    WrongKeyOwner,
)
from mailbox_mcp.errors import MailboxAPIError
from tests import abusive_keys

pytestmark = pytest.mark.anyio


class Directory:
    def __init__(self) -> None:
        self.entries: dict[str, str | None] = {}
        self.calls: list[str] = []

    async def fetch(self, name: str) -> wire.DirectoryEntry:
        self.calls.append(name)
        if name not in self.entries:
            raise MailboxAPIError(404, "agent_not_found", f"no agent is named {name!r}")
        return wire.DirectoryEntry(
            agent_id=f"id-{name}",
            name=name,
            public_key=None,
            openpgp_public_key=self.entries[name],
            key_version=None,
            fingerprint=None,
        )


def _cached(directory: Path) -> list[Path]:
    return list(directory.glob("*.json"))


@pytest.fixture
def directory() -> Directory:
    return Directory()


async def test_a_key_is_fetched_once_then_served_from_memory(
    directory: Directory, tmp_path: Path
) -> None:
    alice = PrivateKey.generate("alice")
    directory.entries["alice"] = alice.public_armored()
    keys = PeerKeys(directory.fetch, tmp_path)
    first, fetched = await keys.lookup("alice")
    second, again = await keys.lookup("alice")
    assert first is not None and first.fingerprint == alice.fingerprint
    assert (fetched, again) == (True, False) and second is first
    assert directory.calls == ["alice"]


async def test_another_process_reads_the_key_from_disk(
    directory: Directory, tmp_path: Path
) -> None:
    directory.entries["alice"] = PrivateKey.generate("alice").public_armored()
    await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    key, fetched = await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert key is not None and not fetched and directory.calls == ["alice"]


async def test_refresh_fetches_a_rotated_key(directory: Directory, tmp_path: Path) -> None:
    directory.entries["alice"] = PrivateKey.generate("alice").public_armored()
    keys = PeerKeys(directory.fetch, tmp_path)
    await keys.lookup("alice")
    rotated = PrivateKey.generate("alice")
    directory.entries["alice"] = rotated.public_armored()
    stale, _ = await keys.lookup("alice")
    fresh, fetched = await keys.lookup("alice", refresh=True)
    assert stale is not None and stale.fingerprint != rotated.fingerprint
    assert fresh is not None and fresh.fingerprint == rotated.fingerprint and fetched
    again, _ = await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert again is not None and again.fingerprint == rotated.fingerprint


async def test_an_old_entry_is_fetched_again(directory: Directory, tmp_path: Path) -> None:
    directory.entries["alice"] = PrivateKey.generate("alice").public_armored()
    keys = PeerKeys(directory.fetch, tmp_path, max_age=0)
    await keys.lookup("alice")
    await keys.lookup("alice")
    assert directory.calls == ["alice", "alice"]


async def test_a_peer_without_a_key_is_never_cached(directory: Directory, tmp_path: Path) -> None:
    directory.entries["bob"] = None
    keys = PeerKeys(directory.fetch, tmp_path)
    with pytest.raises(PeerKeyMissing, match="peer_missing_openpgp_public_key"):
        await keys.require("bob")
    directory.entries["bob"] = PrivateKey.generate("bob").public_armored()
    assert (await keys.require("bob")).owner == "bob"
    assert directory.calls == ["bob", "bob"]


async def test_a_key_made_out_to_another_agent_is_refused(
    directory: Directory, tmp_path: Path
) -> None:
    directory.entries["alice"] = PrivateKey.generate("mallory").public_armored()
    with pytest.raises(WrongKeyOwner):
        await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert not _cached(tmp_path)


async def test_a_damaged_or_swapped_cache_file_is_only_a_miss(
    directory: Directory, tmp_path: Path
) -> None:
    directory.entries["alice"] = PrivateKey.generate("alice").public_armored()
    (tmp_path / "alice.json").write_text("{not json")
    key, fetched = await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert key is not None and fetched
    swapped = {"openpgp_public_key": PrivateKey.generate("mallory").public_armored()}
    (tmp_path / "alice.json").write_text(json.dumps({**swapped, "fetched_at": 9e99}))
    key, fetched = await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert key is not None and key.owner == "alice" and fetched


async def test_a_name_that_is_not_an_agent_name_never_reaches_the_disk(
    directory: Directory, tmp_path: Path
) -> None:
    with pytest.raises(ValueError):
        await PeerKeys(directory.fetch, tmp_path).lookup("../../etc/passwd")
    assert directory.calls == []


async def test_a_published_key_of_thousands_of_user_ids_is_refused_and_not_cached(
    directory: Directory, tmp_path: Path
) -> None:
    directory.entries["alice"] = abusive_keys.many_user_ids(
        PrivateKey.generate("alice").public_armored()
    )
    with pytest.raises(BadKeyError, match="more than 8 user ids"):
        await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    assert not _cached(tmp_path)


@pytest.mark.parametrize("source", ["directory", "disk"])
async def test_the_event_loop_keeps_running_while_a_peer_key_is_parsed(
    directory: Directory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # The parse is held until this task, on the loop, releases it: a parse on the
    # loop would wait out its timeout instead, and report that it was never released.
    directory.entries["alice"] = PrivateKey.generate("alice").public_armored()
    if source == "disk":
        await PeerKeys(directory.fetch, tmp_path).lookup("alice")
    parsing, release = threading.Event(), threading.Event()
    released: list[bool] = []
    parse = PublicKey.parse

    def held_parse(armored: str, owner: str) -> PublicKey:
        parsing.set()
        released.append(release.wait(timeout=5))
        return parse(armored, owner)

    monkeypatch.setattr(keyring.PublicKey, "parse", held_parse)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(PeerKeys(directory.fetch, tmp_path).lookup, "alice")
        assert await anyio.to_thread.run_sync(parsing.wait, 10)
        release.set()
    assert released == [True]
