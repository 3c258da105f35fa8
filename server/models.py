"""The database schema, as SQLAlchemy Core tables (the hot path uses Core, not the ORM).

Secrets never stand here in the clear: API keys as SHA-256 (256 bits of entropy);
connection codes, idempotency keys and send bodies as HMACs under the server
secret (`server.keyed_hash`); everything that carries user text (content,
subjects, request notes, descriptions, correlation ids) as Fernet tokens.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(36)

agents = Table(
    "agents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("description_encrypted", LargeBinary, nullable=True),
    Column("api_key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The recipient's message counter: the next incoming message gets last_seq + 1.
    # Every send locks this row; the acknowledgement watermark lives in its own table
    # (`ack_watermarks`) so that acks and sends never wait on each other.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # Directory entry for end-to-end encryption (section 4 of the contract).
    Column("public_key", Text, nullable=True),
    Column("public_key_algorithm", String(32), nullable=True),
    Column("openpgp_public_key", Text, nullable=True),
    Column("key_version", Integer, nullable=True),
    Column("fingerprint", String(128), nullable=True),
)

connection_requests = Table(
    "connection_requests",
    metadata,
    Column("id", ID, primary_key=True),
    Column("requester_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("target_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    # Kept encrypted so the requester's owner can see the code again in /connections/pending.
    Column("code_encrypted", LargeBinary, nullable=False),
    Column("message_encrypted", LargeBinary, nullable=True),
    # pending | approved | rejected | cancelled
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Index("ix_connection_requests_target_code", "target_id", "code_hash"),
    Index("ix_connection_requests_requester_status", "requester_id", "status"),
    Index("ix_connection_requests_pair_status", "requester_id", "target_id", "status"),
)

# An owner's block of another agent: its connection requests to the blocker are
# accepted silently and never shown (migration 0004).
connection_blocks = Table(
    "connection_blocks",
    metadata,
    Column("blocker_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("blocked_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The limits that count across server processes (server/services/shared_limits.py):
# one row per reservation in a sliding window; the janitor drops expired ones.
limit_events = Table(
    "limit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(32), nullable=False),
    Column("key", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_limit_events_kind_key_at", "kind", "key", "at"),
)

# One row per connected pair, agent_low_id < agent_high_id; a revoke deletes it.
connections = Table(
    "connections",
    metadata,
    Column("id", ID, primary_key=True),
    Column("agent_low_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("agent_high_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("agent_low_id", "agent_high_id", name="uq_connections_pair"),
    Index("ix_connections_high", "agent_high_id"),
)

# A conversation between two agents; it outlives a revoke (history stays readable).
sessions = Table(
    "sessions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("subject_encrypted", LargeBinary, nullable=False),
    Column("agent_low_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("agent_high_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_sessions_low", "agent_low_id"),
    Index("ix_sessions_high", "agent_high_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", ID, primary_key=True),
    Column("to_agent_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("from_agent_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", ID, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("content_encrypted", LargeBinary, nullable=False),
    Column("correlation_id_encrypted", LargeBinary, nullable=True),
    Column("encrypted", Boolean, nullable=False, default=False),
    Column("encryption", String(256), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Set only by an acknowledgement by id of a message above the watermark (and by
    # servers before migration 0002); watermark acks never rewrite message rows.
    Column("acked_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("to_agent_id", "seq", name="uq_messages_recipient_seq"),
    Index("ix_messages_session_created", "session_id", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("sender_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("message_id", ID, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# Everything an agent received at or below up_to_seq is acknowledged. No row: nothing yet.
ack_watermarks = Table(
    "ack_watermarks",
    metadata,
    Column("agent_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("up_to_seq", BigInteger, nullable=False),
)

# One row per move of a watermark by an ack up_to_seq, when it was acknowledged: a
# message's delivery time is that of the first move at or past its seq, read without
# ever rewriting message rows (see services/message_views.py).
ack_watermark_moves = Table(
    "ack_watermark_moves",
    metadata,
    Column("agent_id", ID, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("up_to_seq", BigInteger, primary_key=True),
    Column("acked_at", DateTime(timezone=True), nullable=False),
)

# Random secrets of the server, each a Fernet token (so they rotate with the data):
# "hmac" keys the hashes of `server.keyed_hash`.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value_encrypted", LargeBinary, nullable=False),
)

# The fingerprints of every key stored data may be encrypted with: a server whose
# keys do not cover them refuses to start, and `mailbox-server reencrypt` narrows
# them to the first key when every value is under it (see `server.key_registry`).
encryption_keys = Table(
    "encryption_keys",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
