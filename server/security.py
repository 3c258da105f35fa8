"""Secrets at rest: API keys (format, checksum, hash) and the message cipher.

API keys look like GitHub's tokens: a fixed prefix, random body and a CRC32
checksum, so a typo is caught before a database look-up and a secret scanner
can tell a real key. Only the SHA-256 of a key is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import string
import zlib
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

API_KEY_PREFIX = "amb_"
_BASE62 = string.digits + string.ascii_letters
_BODY_LENGTH = 43  # 43 base62 chars ≈ 256 bits
_CHECKSUM_LENGTH = 6


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LENGTH)


def new_api_key() -> str:
    body = "".join(secrets.choice(_BASE62) for _ in range(_BODY_LENGTH))
    return f"{API_KEY_PREFIX}{body}{_checksum(body)}"


def looks_like_api_key(key: str) -> bool:
    """True when the key has our shape and a valid checksum (no database needed)."""
    if not key.startswith(API_KEY_PREFIX):
        return False
    rest = key[len(API_KEY_PREFIX) :]
    if len(rest) != _BODY_LENGTH + _CHECKSUM_LENGTH or not all(c in _BASE62 for c in rest):
        return False
    body, checksum = rest[:_BODY_LENGTH], rest[_BODY_LENGTH:]
    return hmac.compare_digest(_checksum(body), checksum)


def hash_api_key(key: str) -> str:
    # The key has 256 bits of entropy, so a plain fast hash is enough: no salt
    # or KDF is needed to resist guessing, and look-ups stay one index probe.
    return hashlib.sha256(key.encode()).hexdigest()


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class Cipher:
    """Fernet encryption at rest; the first key encrypts, all keys decrypt."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "MAILBOX_ENCRYPTION_KEY must be one or more Fernet keys, comma separated "
                "(make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            ) from exc

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise RuntimeError(
                "stored data cannot be decrypted: is the key that wrote it missing "
                "from MAILBOX_ENCRYPTION_KEY?"
            ) from exc

    def encrypt_optional(self, text: str | None) -> bytes | None:
        return None if text is None else self.encrypt(text)

    def decrypt_optional(self, token: bytes | None) -> str | None:
        return None if token is None else self.decrypt(token)


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
