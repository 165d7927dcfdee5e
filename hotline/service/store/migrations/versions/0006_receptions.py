"""Themed reception events (主题接待): the events heads schedule, the businesses signed up
for each, and the requests raised at one (`cases.reception_id`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "receptions",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.Text(), nullable=False),
        sa.Column("ends_at", sa.Text(), nullable=False),
        sa.Column("deputies", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("departments", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("signed_up", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("cancelled_by", sa.Text(), nullable=True),
        sa.Column("cancelled_at", sa.Text(), nullable=True),
        sa.CheckConstraint("signed_up <= capacity", name=op.f("receptions_seats")),
        sa.PrimaryKeyConstraint("id", name=op.f("receptions_pkey")),
        sqlite_strict=True,
    )
    op.create_index("receptions_starts", "receptions", ["starts_at"])
    op.create_table(
        "reception_signups",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("reception_id", RowId, nullable=False),
        sa.Column("company", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("raise_text", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("reminded_at", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reception_id"], ["receptions.id"], name=op.f("reception_signups_reception_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("reception_signups_pkey")),
        sqlite_strict=True,
    )
    op.create_index(
        "reception_signups_phone", "reception_signups", ["reception_id", "phone"], unique=True
    )
    op.add_column("cases", sa.Column("reception_id", RowId, nullable=True))
    tagged = sa.text("reception_id IS NOT NULL")
    op.create_index(
        "cases_reception", "cases", ["reception_id", "status"],
        sqlite_where=tagged, postgresql_where=tagged,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("cases_reception", "cases")
    # Not in batch mode: a rebuilt table on SQLite would lose 0002's search triggers.
    op.execute("ALTER TABLE cases DROP COLUMN reception_id")
    op.drop_index("reception_signups_phone", "reception_signups")
    op.drop_table("reception_signups")
    op.drop_index("receptions_starts", "receptions")
    op.drop_table("receptions")
