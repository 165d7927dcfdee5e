"""The months' kept report figures are dropped: they were counted the old way.

Withdrawn and rejected requests now count in the response, resolution and referral rates as
they stood when they were withdrawn or rejected (they were left out whatever had happened
before), and a month kept at the instant one of its due times fell no longer outlives it.
Figures kept before this were counted without either; the next report counts them again.
Nothing else changes, and going back drops them again for the same reason.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM report_parts")


def downgrade() -> None:
    op.execute("DELETE FROM report_parts")
