"""The agent's own secret, kept 0600 in MAILBOX_STATE_DIR.

Reply handles are MACs under a key derived from it, and the audit log keeps a
keyed hash of each text under another: without the state dir nobody can mint
a handle or confirm a guessed text. Every bridge process of the agent reads the
same file. It is created atomically (written in full under a temporary name,
then linked into place, which fails if another process was first), so no
process ever sees it empty or half written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mailbox_mcp.errors import ConfigError

FILE_NAME = "peer-safety.key"
_KEY_BYTES = 32


def load_or_create(state_dir: Path) -> bytes:
    """The agent's secret; made on first use. Raises ConfigError for a damaged file."""
    path = state_dir / FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = state_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(_KEY_BYTES).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another bridge process made it first: use theirs
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"{path} is damaged (it must hold {_KEY_BYTES} random bytes in hex): remove it and "
            "restart the bridge; reply handles minted before then stop working"
        )
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # only the owner may read what mints reply handles
    return key


def derive(key: bytes, purpose: str) -> bytes:
    """A separate key for each use, so a handle MAC and an audit hash never share one."""
    return hmac.new(key, b"agent-mailbox/" + purpose.encode(), hashlib.sha256).digest()
