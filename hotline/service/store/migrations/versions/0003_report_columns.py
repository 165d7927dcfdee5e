"""What the reports count that the cases table did not keep: how often a case was reopened
after a resolution (`reopens`), when a referred case's department answered
(`referral_answered_at`) and when the case was finished (`closed_at`: closed, withdrawn or
rejected). Each is filled from the event log for cases stored before. And each case's due
times (`first_response_due`, `resolution_due`): they depend on the point's config, so the
service fills them in for the cases stored before (`fill_due_times`, found through the
partial index `cases_undue`). The reports read a period's cases from one covering index,
`cases_report`, and keep the figures of past months in `report_parts`. A case
reopened by a low rating kept its `resolved_at` until now; like a case reopened by a member
it is not resolved any more, so the time is cleared.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_REOPENS = (
    "UPDATE cases SET reopens = (SELECT count(*) FROM events e WHERE e.case_id = cases.id"
    " AND (e.kind = 'reopen' OR (e.kind = 'rated' AND e.status = 'reopened')))"
    " WHERE id IN (SELECT case_id FROM events WHERE kind IN ('reopen', 'rated'))"
)
# The latest answer given after the latest referral.
_ANSWERED = (
    "UPDATE cases SET referral_answered_at = (SELECT max(a.at) FROM events a"
    " WHERE a.case_id = cases.id AND a.kind = 'answer' AND a.at >= coalesce((SELECT max(r.at)"
    " FROM events r WHERE r.case_id = cases.id AND r.kind = 'refer'), ''))"
    " WHERE department_id IS NOT NULL"
)
_CLOSED = (
    "UPDATE cases SET closed_at = (SELECT max(e.at) FROM events e WHERE e.case_id = cases.id"
    " AND e.status = cases.status) WHERE status IN ('closed', 'withdrawn', 'rejected')"
)


def upgrade() -> None:
    op.add_column("cases", sa.Column("reopens", sa.Integer(), server_default=sa.text("0"),
                                     nullable=False))  # fmt: skip
    op.add_column("cases", sa.Column("referral_answered_at", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("closed_at", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("first_response_due", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("resolution_due", sa.Text(), nullable=True))
    op.execute(_REOPENS)
    op.execute(_ANSWERED)
    op.execute(_CLOSED)
    op.execute("UPDATE cases SET resolved_at = NULL WHERE status = 'reopened'")
    undue = sa.text("first_response_due IS NULL")
    op.create_index("cases_undue", "cases", ["id"], sqlite_where=undue, postgresql_where=undue)
    op.create_index("cases_report", "cases", list(_REPORT_COLUMNS))
    op.create_table(
        "report_parts",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("since", sa.Text(), nullable=False),
        sa.Column("until", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "since", "until", name="report_parts_pkey"),
        sqlite_strict=True,
    )


# schema.REPORT_COLUMNS when this revision was written.
_REPORT_COLUMNS = (
    "received_at", "channel", "category", "department_id", "assignee_id", "source_tag",
    "status", "first_response_at", "first_response_due", "resolved_at", "resolution_due",
    "reopens", "rating", "presidium", "referral_due", "referral_answered_at", "held_until",
    "company",
)  # fmt: skip


def downgrade() -> None:
    op.drop_table("report_parts")
    op.drop_index("cases_report", "cases")
    op.drop_index("cases_undue", "cases")
    # Not in batch mode: a rebuilt table on SQLite would lose 0002's search triggers.
    for column in ("resolution_due", "first_response_due", "closed_at"):
        op.execute(f"ALTER TABLE cases DROP COLUMN {column}")
    op.execute("ALTER TABLE cases DROP COLUMN referral_answered_at")
    op.execute("ALTER TABLE cases DROP COLUMN reopens")
