"""per-agent blocks of connection requests

An owner can block an agent: its connection requests to the blocker are then
accepted silently and never shown (issue 13: requests could be repeated without
limit). One row per (blocker, blocked); deleting either agent deletes the row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection_blocks",
        sa.Column("blocker_id", sa.String(length=36), nullable=False),
        sa.Column("blocked_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blocker_id"],
            ["agents.id"],
            name=op.f("fk_connection_blocks_blocker_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["blocked_id"],
            ["agents.id"],
            name=op.f("fk_connection_blocks_blocked_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("blocker_id", "blocked_id", name=op.f("pk_connection_blocks")),
    )
    # The cool-down after a rejection counts a requester's rejected requests to one target.
    op.create_index(
        "ix_connection_requests_pair_status",
        "connection_requests",
        ["requester_id", "target_id", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_connection_requests_pair_status", table_name="connection_requests")
    op.drop_table("connection_blocks")
