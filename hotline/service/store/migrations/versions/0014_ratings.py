"""Every rating a case was given, not only its latest: the `ratings` table.

A case rated low (reopened and handed to the standing head), resolved again and rated again
kept only the second rating in its columns, so the satisfaction rate counted one rating per
case where DESIGN.md asks for the ratings given; and the reports credited a rating to the
case's member now, so a low rating landed in the standing head's row (the case is his
after it) and never in that of the member whose handling was rated. Each rating is now a
row with the member it is credited to, filled here from the event log: each `rated` event,
credited to the member the case was with just before it (the latest `assigned`, `reassign`
or `handoff` before it, or a low rating's escalation; the case's own member when its log
names none). A case rated without a `rated` event in its log (loaded from elsewhere) gets
the one its columns tell. The months' kept report figures are dropped: they were counted
the old way.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 20:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HANDED = ("assigned", "reassign", "handoff")  # their detail's "to" is the case's member next
BATCH = 1000


def _ratings(case: Any, events: list[Any]) -> list[dict[str, Any]]:
    """One case's ratings from its events (in order), each credited to the member the case
    was with when it came; a case with no `rated` event gets the rating its columns tell."""
    made: list[dict[str, Any]] = []
    member: str | None = None
    for event in events:
        detail = json.loads(event.detail or "{}")
        if not isinstance(detail, dict):
            continue
        if event.kind in HANDED and detail.get("to"):
            member = str(detail["to"])
        if event.kind != "rated" or not isinstance(detail.get("rating"), int):
            continue
        made.append({
            "case_id": case.id,
            "received_at": case.received_at,
            "member_id": member or case.assignee_id,
            "rating": detail["rating"],
            "rated_at": event.at,
        })  # fmt: skip
        if detail.get("escalated_to"):
            member = str(detail["escalated_to"])
    if made or case.rating is None:
        return made
    return [{
        "case_id": case.id,
        "received_at": case.received_at,
        "member_id": case.assignee_id,
        "rating": case.rating,
        "rated_at": case.rated_at or case.updated_at,
    }]  # fmt: skip


def _fill() -> None:
    """The ratings of every case ever rated (its rating is set), a thousand cases at a time."""
    conn = op.get_bind()
    last = 0
    while True:
        cases = conn.execute(
            sa.text(
                "SELECT id, received_at, assignee_id, rating, rated_at, updated_at"  # noqa: S608 - ours
                f" FROM cases WHERE rating IS NOT NULL AND id > :last ORDER BY id LIMIT {BATCH}"
            ),
            {"last": last},
        ).all()
        if not cases:
            return
        last = cases[-1].id
        kinds = ", ".join(f"'{kind}'" for kind in (*HANDED, "rated"))
        events = conn.execute(
            sa.text(
                "SELECT case_id, at, kind, detail FROM events"  # noqa: S608 - ours
                f" WHERE case_id >= :first AND case_id <= :last AND kind IN ({kinds})"
                " ORDER BY case_id, id"
            ),
            {"first": cases[0].id, "last": last},
        ).all()
        by_case: dict[int, list[Any]] = {}
        for event in events:
            by_case.setdefault(event.case_id, []).append(event)
        rows = [row for case in cases for row in _ratings(case, by_case.get(case.id, []))]
        if rows:
            conn.execute(
                sa.text(
                    "INSERT INTO ratings (case_id, received_at, member_id, rating, rated_at)"
                    " VALUES (:case_id, :received_at, :member_id, :rating, :rated_at)"
                ),
                rows,
            )


def upgrade() -> None:
    op.create_table(
        "ratings",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("case_id", RowId, nullable=False),
        sa.Column("received_at", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("rated_at", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("ratings_case_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("ratings_pkey")),
        sqlite_strict=True,
    )
    op.create_index("ratings_case", "ratings", ["case_id", "id"])
    op.create_index("ratings_member", "ratings", ["member_id", "case_id"])
    op.create_index("ratings_received", "ratings", ["received_at"])
    _fill()
    op.execute("DELETE FROM report_parts")


def downgrade() -> None:
    op.drop_index("ratings_received", "ratings")
    op.drop_index("ratings_member", "ratings")
    op.drop_index("ratings_case", "ratings")
    op.drop_table("ratings")
    op.execute("DELETE FROM report_parts")
