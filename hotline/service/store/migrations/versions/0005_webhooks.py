"""Partners' webhooks and their deliveries: one delivery row per (webhook, event), made in
the write that records the event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DUE = sa.text("status IN ('queued', 'retrying', 'sending')")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("webhooks_pkey")),
        sqlite_strict=True,
    )
    active = sa.text("revoked_at IS NULL")
    op.create_index(
        "webhooks_active_name", "webhooks", ["name"], unique=True,
        sqlite_where=active, postgresql_where=active,
    )  # fmt: skip
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("webhook_id", RowId, nullable=False),
        sa.Column("event_id", RowId, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.Text(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("delivered_at", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'retrying', 'delivered', 'failed')",
            name=op.f("webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("webhook_deliveries_event_id_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"], ["webhooks.id"], name=op.f("webhook_deliveries_webhook_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("webhook_deliveries_pkey")),
        sqlite_strict=True,
    )
    op.create_index(
        "webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id", "event_id"],
        unique=True,
    )  # fmt: skip
    op.create_index(
        "webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
        sqlite_where=DUE, postgresql_where=DUE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("webhook_deliveries_due", "webhook_deliveries")
    op.drop_index("webhook_deliveries_webhook_id", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("webhooks_active_name", "webhooks")
    op.drop_table("webhooks")
