"""Withdrawn reception sign-ups are kept: who signed up, when, and which head withdrew them.

A head's withdrawal deleted the sign-up, and only a log line and the text to its contact
said it had been there. Now the write that deletes it keeps a copy in
`reception_withdrawals`, with when and by whom, and the event's console page lists them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reception_withdrawals",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("reception_id", RowId, nullable=False),
        sa.Column("company", sa.Text(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=False),
        sa.Column("raise_text", sa.Text(), nullable=False),
        sa.Column("signed_up_at", sa.Text(), nullable=False),
        sa.Column("withdrawn_at", sa.Text(), nullable=False),
        sa.Column("withdrawn_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reception_id"],
            ["receptions.id"],
            name=op.f("reception_withdrawals_reception_id_fkey"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("reception_withdrawals_pkey")),
        sqlite_strict=True,
    )
    op.create_index(
        "reception_withdrawals_reception", "reception_withdrawals", ["reception_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("reception_withdrawals_reception", "reception_withdrawals")
    op.drop_table("reception_withdrawals")
