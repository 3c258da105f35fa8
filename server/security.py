"""API keys: format, checksum and the hash that is stored.

API keys look like GitHub's tokens: a fixed prefix, random body and a CRC32
checksum, so a typo is caught before a database look-up and a secret scanner
can tell a real key. Only the SHA-256 of a key is stored. (Encryption at rest
is in `server.cipher`, keyed hashes of other values in `server.keyed_hash`.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib

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
