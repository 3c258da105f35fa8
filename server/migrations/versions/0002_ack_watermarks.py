"""the acknowledgement watermark apart from the send counter

Every send locks its recipient's `agents` row to bump `last_seq`; an ack that
wrote `agents.ack_seq` took the same lock and waited on sends (and they on it).
The watermark moves to `ack_watermarks`, and each move is logged in
`ack_watermark_moves` so a message's delivery time can be read without
rewriting message rows. An existing `agents.ack_seq` becomes the watermark;
`messages.acked_at` stays (acks by id still set it, and it holds the delivery
times of everything acknowledged before this migration).

The column is dropped with a plain ALTER TABLE (SQLite 3.35+): a batch
"copy and move" would drop `agents`, and SQLite with foreign keys on runs an
implicit DELETE for that, whose ON DELETE CASCADE would empty every table
referring to it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ack_watermarks",
        sa.Column("agent_id", sa.String(length=36), nullable=False),
        sa.Column("up_to_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_ack_watermarks_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_ack_watermarks")),
    )
    op.create_table(
        "ack_watermark_moves",
        sa.Column("agent_id", sa.String(length=36), nullable=False),
        sa.Column("up_to_seq", sa.BigInteger(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_ack_watermark_moves_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "up_to_seq", name=op.f("pk_ack_watermark_moves")),
    )
    # Before this revision every acknowledged message had its own acked_at, so the
    # carried-over watermark needs no moves: delivery times stay as they were.
    op.execute(
        "INSERT INTO ack_watermarks (agent_id, up_to_seq)"
        " SELECT id, ack_seq FROM agents WHERE ack_seq > 0"
    )
    op.execute("ALTER TABLE agents DROP COLUMN ack_seq")


def downgrade() -> None:
    op.add_column(
        "agents",
        sa.Column("ack_seq", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE agents SET ack_seq = (SELECT up_to_seq FROM ack_watermarks"
        " WHERE ack_watermarks.agent_id = agents.id)"
        " WHERE id IN (SELECT agent_id FROM ack_watermarks)"
    )
    # The old schema reads delivery times from acked_at only: write them back.
    op.execute(
        "UPDATE messages SET acked_at = (SELECT min(m.acked_at) FROM ack_watermark_moves m"
        " WHERE m.agent_id = messages.to_agent_id AND m.up_to_seq >= messages.seq)"
        " WHERE acked_at IS NULL AND EXISTS (SELECT 1 FROM ack_watermark_moves m"
        " WHERE m.agent_id = messages.to_agent_id AND m.up_to_seq >= messages.seq)"
    )
    op.drop_table("ack_watermark_moves")
    op.drop_table("ack_watermarks")
