"""Peers' keys: asked of the directory once, then kept in memory and on disk, refreshed on demand.

The directory is a dict behind an async function that counts its calls, so
each test can say exactly when the network would have been used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailbox_mcp.crypto import PeerKeyMissing, PrivateKey, WrongKeyOwner
from mailbox_mcp.errors import MailboxAPIError
from mailbox_mcp.keyring import PeerKeys

pytestmark = pytest.mark.anyio


class Directory:
    def __init__(self) -> None:
        self.entries: dict[str, str | None] = {}
        self.calls: list[str] = []

    async def fetch(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        if name not in self.entries:
            raise MailboxAPIError(404, "agent_not_found", f"no agent is named {name!r}")
        return {"name": name, "openpgp_public_key": self.entries[name]}


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
