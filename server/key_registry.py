"""Which Fernet keys the stored data needs, and the server secret, read at start.

A server that cannot decrypt what it holds must not start: every read of such
a row would fail. Decrypting every row at start would be exact but slow, so
the database keeps the fingerprints of every key data may be encrypted with
(`encryption_keys`): a server records its first key before it encrypts
anything with it, and `mailbox-server reencrypt` narrows the set to the first
key once every value is under it. The start-up check is one small query: the
recorded fingerprints must all be among the configured keys'.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .cipher import Cipher
from .clock import utcnow
from .db import Database
from .errors import ConfigurationError, StoredDataUnreadable
from .keyed_hash import SECRET_BYTES, KeyedHash
from .models import encryption_keys, server_secrets

HMAC_SECRET = "hmac"


def short(fingerprint: str) -> str:
    return fingerprint[:12]


def missing_keys_message(missing: set[str], cipher: Cipher) -> str:
    return (
        "the database holds data encrypted with keys that MAILBOX_ENCRYPTION_KEY does not "
        f"hold (fingerprints {', '.join(sorted(short(f) for f in missing))}; the configured "
        f"keys are {', '.join(short(f) for f in cipher.fingerprints)}). Put the missing keys "
        "back, after the first key, comma separated. To retire a key: keep it listed, run "
        "`mailbox-server reencrypt`, then remove it."
    )


async def recorded_fingerprints(conn: AsyncConnection) -> set[str]:
    return set((await conn.execute(select(encryption_keys.c.fingerprint))).scalars())


async def check_and_record(conn: AsyncConnection, cipher: Cipher) -> None:
    """Refuse keys that do not cover the data; record the key about to encrypt."""
    recorded = await recorded_fingerprints(conn)
    missing = recorded - set(cipher.fingerprints)
    if missing:
        raise ConfigurationError(missing_keys_message(missing, cipher))
    if cipher.primary_fingerprint not in recorded:
        await conn.execute(
            insert(encryption_keys).values(
                fingerprint=cipher.primary_fingerprint, recorded_at=utcnow()
            )
        )


async def open_keys(db: Database, cipher: Cipher) -> KeyedHash:
    """Check the keys against the data and return the keyed hash under the server secret."""
    async with db.write() as conn:
        await check_and_record(conn, cipher)
        token = (
            await conn.execute(
                select(server_secrets.c.value_encrypted).where(server_secrets.c.name == HMAC_SECRET)
            )
        ).scalar_one_or_none()
        if token is None:
            secret = secrets.token_bytes(SECRET_BYTES)
            await conn.execute(
                insert(server_secrets).values(
                    name=HMAC_SECRET, value_encrypted=cipher.encrypt_bytes(secret)
                )
            )
        else:
            try:
                secret = cipher.decrypt_bytes(token)
            except StoredDataUnreadable:
                # Only a database written without the fingerprint record gets here.
                raise ConfigurationError(
                    "the server secret in the database cannot be decrypted with "
                    "MAILBOX_ENCRYPTION_KEY: put back the key that wrote the data"
                ) from None
    return KeyedHash(secret)


async def narrow_to_primary(db: Database, cipher: Cipher) -> None:
    """After a full re-encryption: only the first key is needed from now on.

    Only configured keys are dropped: a fingerprint recorded meanwhile by a server
    with other keys stays, on the safe side."""
    retired = cipher.fingerprints[1:]
    if not retired:
        return
    async with db.write() as conn:
        await conn.execute(
            delete(encryption_keys).where(encryption_keys.c.fingerprint.in_(retired))
        )
