"""keyed hashes, encrypted user text, the server secret and the key fingerprints

Issue 13 found, in a copy of the database: `code_hash` an unsalted SHA-256 of a
19-bit code (every code recovered in a second), `body_hash` a plain SHA-256 of
the send body (a guessed message confirmed), and `correlation_id`,
`idempotency_keys.key` and agent descriptions in plaintext. This revision:

- adds `server_secrets` with a random 32-byte HMAC secret, Fernet-encrypted
  (so it is rotated with the data and lookups survive key retirement), and
  `encryption_keys`, the fingerprints of every key data may be encrypted with
  (all configured keys: any of them may have written what is there);
- rehashes every connection code under the secret. The code itself is in
  `code_encrypted` (the requester's copy), so nothing is guessed and nothing
  expires: pending requests keep working with the code their owners hold;
- keys every idempotency record: the key as HMAC(key), the body hash as
  HMAC(old SHA-256 digest), which is exactly what the server computes from now
  on (`server.keyed_hash`), so a retry within 24 hours still replays;
- encrypts correlation ids and descriptions into `*_encrypted` columns and
  drops the plaintext ones (plain ALTER TABLE, as 0002 explains: a batch copy
  of `agents` would cascade-delete on SQLite).

It needs the Fernet keys (`mailbox-server migrate` and the SQLite start-up pass
them) unless the database holds no agent yet. Downgrading decrypts back;
idempotency records cannot be un-keyed and are dropped (a retry after a
downgrade sends again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00.000000
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 1000

# A frozen copy of `server.keyed_hash` as of this revision: the digests written
# here must equal what the server computes.
_CONNECTION_CODE = b"connection-code\x00"
_IDEMPOTENCY_KEY = b"idempotency-key\x00"
_SEND_BODY = b"send-body\x00"


def _keyed(secret: bytes, label: bytes, value: str) -> str:
    return hmac.new(secret, label + value.encode(), hashlib.sha256).hexdigest()


def _cipher(required_for: str) -> Any:
    config = op.get_context().config
    cipher = None if config is None else config.attributes.get("cipher")
    if cipher is None:
        raise RuntimeError(
            f"migration 0003 {required_for} and needs the encryption keys: run "
            "`mailbox-server migrate` with MAILBOX_ENCRYPTION_KEY set"
        )
    return cipher


def _batches(rows: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def _update_each(table: str, column: str, key: str, values: list[dict[str, Any]]) -> None:
    statement = sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key")
    for chunk in _batches(values):
        op.get_bind().execute(statement, list(chunk))


def _idempotency_table(key_column: sa.Column[Any]) -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("sender_id", sa.String(length=36), nullable=False),
        key_column,
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_idempotency_keys_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"],
            ["agents.id"],
            name=op.f("fk_idempotency_keys_sender_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sender_id", key_column.name, name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at"])


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )
    op.create_table(
        "encryption_keys",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_encryption_keys")),
    )
    op.add_column("agents", sa.Column("description_encrypted", sa.LargeBinary(), nullable=True))
    op.add_column(
        "messages", sa.Column("correlation_id_encrypted", sa.LargeBinary(), nullable=True)
    )
    old_records = bind.execute(
        sa.text("SELECT sender_id, key, body_hash, message_id, created_at FROM idempotency_keys")
    ).all()
    op.drop_table("idempotency_keys")
    _idempotency_table(sa.Column("key_hash", sa.String(length=64), nullable=False))

    if bind.execute(sa.text("SELECT 1 FROM agents LIMIT 1")).first() is not None:
        _convert(bind, _cipher("converts stored data"), old_records)

    op.execute("ALTER TABLE agents DROP COLUMN description")
    op.execute("ALTER TABLE messages DROP COLUMN correlation_id")


def _convert(bind: sa.Connection, cipher: Any, old_records: Sequence[Any]) -> None:
    secret = secrets.token_bytes(32)
    now = datetime.now(UTC)
    bind.execute(
        sa.text("INSERT INTO server_secrets (name, value_encrypted) VALUES ('hmac', :value)"),
        {"value": cipher.encrypt_bytes(secret)},
    )
    bind.execute(
        sa.text("INSERT INTO encryption_keys (fingerprint, recorded_at) VALUES (:f, :at)"),
        [{"f": f, "at": now} for f in dict.fromkeys(cipher.fingerprints)],
    )
    descriptions = bind.execute(
        sa.text("SELECT id, description FROM agents WHERE description IS NOT NULL")
    ).all()
    _update_each(
        "agents",
        "description_encrypted",
        "id",
        [{"key": row.id, "value": cipher.encrypt(row.description)} for row in descriptions],
    )
    correlations = bind.execute(
        sa.text("SELECT id, correlation_id FROM messages WHERE correlation_id IS NOT NULL")
    ).all()
    _update_each(
        "messages",
        "correlation_id_encrypted",
        "id",
        [{"key": row.id, "value": cipher.encrypt(row.correlation_id)} for row in correlations],
    )
    requests = bind.execute(sa.text("SELECT id, code_encrypted FROM connection_requests")).all()
    _update_each(
        "connection_requests",
        "code_hash",
        "id",
        [
            {
                "key": row.id,
                "value": _keyed(secret, _CONNECTION_CODE, cipher.decrypt(row.code_encrypted)),
            }
            for row in requests
        ],
    )
    insert = sa.text(
        "INSERT INTO idempotency_keys (sender_id, key_hash, body_hash, message_id, created_at)"
        " VALUES (:sender_id, :key_hash, :body_hash, :message_id, :created_at)"
    )
    for chunk in _batches(old_records):
        bind.execute(
            insert,
            [
                {
                    "sender_id": row.sender_id,
                    "key_hash": _keyed(secret, _IDEMPOTENCY_KEY, row.key),
                    "body_hash": _keyed(secret, _SEND_BODY, row.body_hash),
                    "message_id": row.message_id,
                    "created_at": row.created_at,
                }
                for row in chunk
            ],
        )


def downgrade() -> None:
    bind = op.get_bind()
    op.add_column("agents", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("correlation_id", sa.String(length=128), nullable=True))
    if bind.execute(sa.text("SELECT 1 FROM agents LIMIT 1")).first() is not None:
        cipher = _cipher("decrypts stored data")
        descriptions = bind.execute(
            sa.text(
                "SELECT id, description_encrypted FROM agents"
                " WHERE description_encrypted IS NOT NULL"
            )
        ).all()
        _update_each(
            "agents",
            "description",
            "id",
            [{"key": r.id, "value": cipher.decrypt(r.description_encrypted)} for r in descriptions],
        )
        correlations = bind.execute(
            sa.text(
                "SELECT id, correlation_id_encrypted FROM messages"
                " WHERE correlation_id_encrypted IS NOT NULL"
            )
        ).all()
        _update_each(
            "messages",
            "correlation_id",
            "id",
            [
                {"key": r.id, "value": cipher.decrypt(r.correlation_id_encrypted)}
                for r in correlations
            ],
        )
        requests = bind.execute(sa.text("SELECT id, code_encrypted FROM connection_requests")).all()
        _update_each(
            "connection_requests",
            "code_hash",
            "id",
            [
                {
                    "key": r.id,
                    "value": hashlib.sha256(cipher.decrypt(r.code_encrypted).encode()).hexdigest(),
                }
                for r in requests
            ],
        )
    # Keyed records cannot give their keys back: they go (they only live 24 hours).
    op.drop_table("idempotency_keys")
    _idempotency_table(sa.Column("key", sa.String(length=128), nullable=False))
    op.execute("ALTER TABLE agents DROP COLUMN description_encrypted")
    op.execute("ALTER TABLE messages DROP COLUMN correlation_id_encrypted")
    op.drop_table("encryption_keys")
    op.drop_table("server_secrets")
