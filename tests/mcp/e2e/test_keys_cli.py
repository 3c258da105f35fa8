"""`mailbox-mcp keys generate|publish|show`: the real console script against a real server."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mailbox_mcp.e2e.openpgp import PrivateKey
from tests.helpers import Agent, register
from tests.servers import ServerThread

MAILBOX_MCP = str(Path(sys.executable).parent / "mailbox-mcp")


def run_keys(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [MAILBOX_MCP, "keys", *args],
        env=env,
        stdin=subprocess.DEVNULL,  # never a terminal: no prompt can hang a test
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


@pytest.fixture
def owner(mailbox: ServerThread) -> Agent:
    return register(mailbox.url, "keyed")


def _env(mailbox: ServerThread, agent: Agent, state_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "MAILBOX_SERVER_URL": mailbox.url,
        "MAILBOX_API_KEY": agent.api_key,
        "MAILBOX_STATE_DIR": str(state_dir),
        **extra,
    }


def _directory(mailbox: ServerThread, name: str) -> dict[str, object]:
    return httpx.get(f"{mailbox.url}/public/agents/{name}", timeout=10).json()


def test_generate_writes_a_0600_protected_key_named_for_the_registered_agent(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    env = _env(mailbox, owner, tmp_path, MAILBOX_PGP_PASSPHRASE="pw")
    result = run_keys("generate", env=env)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "openpgp-private-key.asc"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = PrivateKey.load(path, "pw")
    assert key.is_protected and key.belongs_to(owner.name) and key.algorithm == "ed25519"
    assert key.fingerprint in result.stdout and "keys publish" in result.stdout


def test_generate_never_replaces_a_key_without_force(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    env = _env(mailbox, owner, tmp_path)
    assert run_keys("generate", "--no-passphrase", env=env).returncode == 0
    path = tmp_path / "openpgp-private-key.asc"
    before = path.read_text()
    again = run_keys("generate", "--no-passphrase", env=env)
    assert again.returncode != 0 and "--force" in again.stderr
    assert path.read_text() == before
    forced = run_keys("generate", "--no-passphrase", "--force", env=env)
    assert forced.returncode == 0 and path.read_text() != before


def test_generate_without_a_passphrase_source_refuses_rather_than_storing_it_bare(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    result = run_keys("generate", env=_env(mailbox, owner, tmp_path))
    assert result.returncode != 0
    assert "MAILBOX_PGP_PASSPHRASE" in result.stderr and "--no-passphrase" in result.stderr
    assert not (tmp_path / "openpgp-private-key.asc").exists()


def test_generate_rsa_4096_writes_to_the_configured_file(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    path = tmp_path / "elsewhere" / "key.asc"
    env = _env(mailbox, owner, tmp_path, MAILBOX_PGP_PRIVATE_KEY_FILE=str(path))
    result = run_keys("generate", "--rsa", "4096", "--no-passphrase", env=env)
    assert result.returncode == 0, result.stderr
    assert PrivateKey.load(path, None).algorithm == "rsa4096"


def test_publish_puts_the_key_in_the_directory_and_counts_versions_per_new_key(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    env = _env(mailbox, owner, tmp_path, MAILBOX_PGP_PASSPHRASE="pw")
    assert run_keys("generate", env=env).returncode == 0
    key = PrivateKey.load(tmp_path / "openpgp-private-key.asc", "pw")
    assert run_keys("publish", env=env).returncode == 0
    entry = _directory(mailbox, owner.name)
    assert entry["fingerprint"] == key.fingerprint and entry["key_version"] == 1
    assert entry["public_key"] == key.spki_pem()
    assert entry["openpgp_public_key"] == key.public_armored()
    assert run_keys("publish", env=env).returncode == 0  # same key: same version
    assert _directory(mailbox, owner.name)["key_version"] == 1
    assert run_keys("generate", "--force", env=env).returncode == 0
    assert run_keys("publish", env=env).returncode == 0
    assert _directory(mailbox, owner.name)["key_version"] == 2


def test_publish_refuses_a_key_made_out_to_another_agent(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    env = _env(mailbox, owner, tmp_path)
    assert (
        run_keys("generate", "--no-passphrase", "--name", "someone-else", env=env).returncode == 0
    )
    result = run_keys("publish", env=env)
    assert result.returncode != 0 and "someone-else" in result.stderr
    assert _directory(mailbox, owner.name)["fingerprint"] is None


def test_publish_with_a_wrong_passphrase_fails_before_publishing(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    assert (
        run_keys(
            "generate", env=_env(mailbox, owner, tmp_path, MAILBOX_PGP_PASSPHRASE="a")
        ).returncode
        == 0
    )
    result = run_keys("publish", env=_env(mailbox, owner, tmp_path, MAILBOX_PGP_PASSPHRASE="b"))
    assert result.returncode != 0 and "MAILBOX_PGP_PASSPHRASE" in result.stderr
    assert _directory(mailbox, owner.name)["fingerprint"] is None


def test_show_tells_whether_the_directory_has_this_key(
    mailbox: ServerThread, owner: Agent, tmp_path: Path
) -> None:
    env = _env(mailbox, owner, tmp_path)
    missing = run_keys("show", env=env)
    assert missing.returncode != 0 and "keys generate" in missing.stderr
    assert run_keys("generate", "--no-passphrase", env=env).returncode == 0
    assert "nothing published" in run_keys("show", env=env).stdout
    assert run_keys("publish", env=env).returncode == 0
    shown = run_keys("show", env=env)
    key = PrivateKey.load(tmp_path / "openpgp-private-key.asc", None)
    assert key.fingerprint in shown.stdout and "this key, version 1" in shown.stdout
