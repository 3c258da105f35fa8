"""Keyed hashes (HMAC-SHA256) of values the server must compare but never show.

A plain hash of a low-entropy value is a confirmation oracle for whoever holds
the database: a connection code has 19 bits (576,000 codes, all hashed in a
second), and a message body can be confirmed by hashing a guess. Under a
secret key the stored digests are useless without the key.

Where the key lives: a random 32-byte server secret, stored in the database
encrypted with the Fernet keys (`server_secrets`, see `server.key_registry`).
It is not derived from a Fernet key, so retiring a Fernet key changes no
digest and every look-up keeps working; `mailbox-server reencrypt` rotates the
secret's own token with the rest. Stealing the database alone reveals nothing;
stealing the database and the Fernet keys reveals everything anyway.

Each use has its own label, so a digest made for one purpose never matches one
made for another. Migration 0003 holds a frozen copy of these functions: change
them only with a migration that rehashes.
"""

from __future__ import annotations

import hashlib
import hmac

SECRET_BYTES = 32

_CONNECTION_CODE = b"connection-code\x00"
_IDEMPOTENCY_KEY = b"idempotency-key\x00"
_SEND_BODY = b"send-body\x00"


class KeyedHash:
    """HMAC-SHA256 under the server secret, one label per purpose; hex digests."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError("the server secret is too short")
        self._secret = secret

    def _digest(self, label: bytes, value: bytes) -> str:
        return hmac.new(self._secret, label + value, hashlib.sha256).hexdigest()

    def connection_code(self, code: str) -> str:
        return self._digest(_CONNECTION_CODE, code.encode())

    def idempotency_key(self, key: str) -> str:
        return self._digest(_IDEMPOTENCY_KEY, key.encode())

    def send_body(self, canonical_json: bytes) -> str:
        # The HMAC of the body's SHA-256, not of the body: migration 0003 could
        # only key the SHA-256 digests it found (the bodies are not stored).
        return self._digest(_SEND_BODY, hashlib.sha256(canonical_json).hexdigest().encode())
