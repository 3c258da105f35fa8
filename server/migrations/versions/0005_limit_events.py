"""limits that count across server processes

The registration and approve-failure limits counted in each process's memory,
so N server processes on one PostgreSQL allowed N times the limit (contract
§10). Each reservation is now a row here, taken under an advisory lock.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_events")),
    )
    op.create_index("ix_limit_events_kind_key_at", "limit_events", ["kind", "key", "at"])


def downgrade() -> None:
    op.drop_index("ix_limit_events_kind_key_at", table_name="limit_events")
    op.drop_table("limit_events")
