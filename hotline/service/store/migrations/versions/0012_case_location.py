"""Where a case is, as an Open311 client gave it: an address, and a position in degrees.

Open311's POST takes `address_string`, `lat` and `long`, and its GET gives them back as
`address`, `lat` and `long`. They were only joined to the request's text, so a client that
posted them read back null. Three nullable columns, added without rewriting the table on
either engine; the cases stored before keep null.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Degrees: sa.Double[float] = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.add_column("cases", sa.Column("address", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("latitude", Degrees, nullable=True))
    op.add_column("cases", sa.Column("longitude", Degrees, nullable=True))


def downgrade() -> None:
    for column in ("longitude", "latitude", "address"):
        op.drop_column("cases", column)
