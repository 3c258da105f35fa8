"""Encryption at rest: Fernet under one or more keys, and what names a key.

`MAILBOX_ENCRYPTION_KEY` holds one or more Fernet keys, comma separated: the
first encrypts, all decrypt. A key is named by its fingerprint, a keyed hash
of a constant under the key itself: it tells keys apart in the database and in
error messages and reveals nothing about the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import ConfigurationError, StoredDataUnreadable

log = logging.getLogger(__name__)

_FINGERPRINT_LABEL = b"agent-mailbox encryption key fingerprint v1"

UNREADABLE = (
    "a stored value cannot be decrypted with the server's keys: the key that wrote it "
    "is missing from MAILBOX_ENCRYPTION_KEY; the operator must add it back"
)


def fingerprint(key: str) -> str:
    """A stable public name of a Fernet key (hex of an HMAC-SHA256 keyed by the key)."""
    return hmac.new(key.strip().encode(), _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def parse_keys(setting: str) -> list[str]:
    keys = [k.strip() for k in setting.split(",") if k.strip()]
    if not keys:
        raise ConfigurationError("MAILBOX_ENCRYPTION_KEY is set but holds no key")
    return keys


class Cipher:
    """Fernet encryption at rest; the first key encrypts, all keys decrypt."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        try:
            self._primary = Fernet(keys[0].strip().encode())
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "MAILBOX_ENCRYPTION_KEY must be one or more Fernet keys, comma separated "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from exc
        self.fingerprints = [fingerprint(k) for k in keys]

    @property
    def primary_fingerprint(self) -> str:
        return self.fingerprints[0]

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def decrypt(self, token: bytes) -> str:
        return self.decrypt_bytes(token).decode()

    def encrypt_bytes(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            # Logged for the operator; the caller gets a JSON error, never a 500.
            log.error("%s (run `mailbox-server reencrypt` once it is back)", UNREADABLE)
            raise StoredDataUnreadable(UNREADABLE) from None

    def encrypt_optional(self, text: str | None) -> bytes | None:
        return None if text is None else self.encrypt(text)

    def decrypt_optional(self, token: bytes | None) -> str | None:
        return None if token is None else self.decrypt(token)

    def is_under_primary(self, token: bytes) -> bool:
        """True when the first key wrote `token` (a rotation would change nothing)."""
        try:
            self._primary.decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """`token` encrypted anew under the first key; InvalidToken if no key reads it."""
        return self._fernet.rotate(token)


def load_or_create_sqlite_key(database_file: Path) -> str:
    """The key kept beside a SQLite database, made once (0600) so restarts lose nothing."""
    key_file = database_file.with_name(database_file.name + ".key")
    if key_file.exists():
        return key_file.read_text().strip()
    key = Fernet.generate_key().decode()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "MAILBOX_ENCRYPTION_KEY is not set: generated a key in %s (mode 0600). "
        "Back it up with the database; without it stored messages cannot be read.",
        key_file,
    )
    return key
