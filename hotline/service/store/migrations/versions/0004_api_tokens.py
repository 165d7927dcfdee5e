"""API tokens: a name, a scope (read or write) and the SHA-256 of the secret. A name belongs
to one active token at a time (a partial unique index).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.Text(), nullable=True),
        sa.Column("last_used_at", sa.Text(), nullable=True),
        sa.CheckConstraint("scope IN ('read', 'write')", name=op.f("api_tokens_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("api_tokens_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("api_tokens_token_hash_key")),
        sqlite_strict=True,
    )
    active = sa.text("revoked_at IS NULL")
    op.create_index(
        "api_tokens_active_name", "api_tokens", ["name"], unique=True,
        sqlite_where=active, postgresql_where=active,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("api_tokens_active_name", "api_tokens")
    op.drop_table("api_tokens")
