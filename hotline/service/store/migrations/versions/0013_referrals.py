"""Every referral a case had, not only its latest: the `referrals` table.

A case referred to one department and then to another kept only the second in its columns
(department_id, referral_due, referral_answered_at), so the report's per-department
on-time share never saw the first: a department that let a referral pass its due date
and had it taken away was not counted late. Each referral is now a row, filled here from
the event log of every case that was ever referred (`refer` events, in order, and what
answered or took back each: the rules of service/workflow as they stand at this revision;
a case loaded without its events gets the one referral its columns tell).
The months' kept report figures are dropped: they were counted the old way.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 15:00:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = "answered_at IS NULL AND ended_at IS NULL"
ANSWERED = ("answer", "resolve")
ENDED = ("refer", "reassign", "withdraw", "reject")  # a reassign, as it was before 0013
BATCH = 1000


def _from_columns(case: Any) -> dict[str, Any]:
    """A case loaded without its events: its one referral as its columns tell it."""
    answered = case.referral_answered_at
    return {
        "case_id": case.id,
        "received_at": case.received_at,
        "department_id": case.department_id,
        "referred_at": case.first_response_at or case.received_at,
        "due": case.referral_due or case.updated_at,
        "answered_at": answered,
        "ended_at": None if answered or case.status == "referred" else case.updated_at,
    }


def _referrals(case: Any, events: list[Any]) -> list[dict[str, Any]]:
    """One case's referrals from its events (in order): what the store now keeps as it goes
    (a later due date for the same department before the first passed extends it; a
    reassign then took a case out of `referred`, so it takes the referral back here)."""
    case_id, due_now = case.id, case.referral_due
    made: list[dict[str, Any]] = []
    waiting: dict[str, Any] | None = None
    for event in events:
        detail = json.loads(event.detail or "{}") if event.kind == "refer" else {}
        if (
            waiting is not None
            and detail.get("department") == waiting["department_id"]
            and detail.get("due")
            and event.at <= waiting["due"]
        ):
            waiting["due"] = detail["due"]  # the same department, a later date in time
            continue
        if waiting is not None and event.kind in ANSWERED:
            waiting["answered_at"], waiting = event.at, None
        elif waiting is not None and event.kind in ENDED:
            waiting["ended_at"], waiting = event.at, None
        if event.kind != "refer" or not detail.get("department"):
            continue
        waiting = {
            "case_id": case_id,
            "received_at": case.received_at,
            "department_id": detail["department"],
            "referred_at": event.at,
            "due": detail.get("due") or due_now or event.at,
            "answered_at": None,
            "ended_at": None,
        }
        made.append(waiting)
    return made or [_from_columns(case)]


def _fill() -> None:
    """The referrals of every case ever referred (its department_id is set), a thousand
    cases at a time."""
    conn = op.get_bind()
    last = 0
    while True:
        cases = conn.execute(
            sa.text(
                "SELECT id, status, department_id, referral_due, referral_answered_at,"  # noqa: S608 - ours
                " first_response_at, received_at, updated_at FROM cases"
                " WHERE department_id IS NOT NULL"
                f" AND id > :last ORDER BY id LIMIT {BATCH}"
            ),
            {"last": last},
        ).all()
        if not cases:
            return
        last = cases[-1].id
        kinds = ", ".join(f"'{kind}'" for kind in sorted({*ANSWERED, *ENDED}))
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
        rows = [row for case in cases for row in _referrals(case, by_case.get(case.id, []))]
        if rows:
            conn.execute(
                sa.text(
                    "INSERT INTO referrals (case_id, received_at, department_id, referred_at,"
                    " due, answered_at, ended_at) VALUES (:case_id, :received_at,"
                    " :department_id, :referred_at, :due, :answered_at, :ended_at)"
                ),
                rows,
            )


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", RowId, autoincrement=True, nullable=False),
        sa.Column("case_id", RowId, nullable=False),
        sa.Column("received_at", sa.Text(), nullable=False),
        sa.Column("department_id", sa.Text(), nullable=False),
        sa.Column("referred_at", sa.Text(), nullable=False),
        sa.Column("due", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.Text(), nullable=True),
        sa.Column("ended_at", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("referrals_case_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("referrals_pkey")),
        sqlite_strict=True,
    )
    op.create_index("referrals_case", "referrals", ["case_id", "id"])
    op.create_index("referrals_department", "referrals", ["department_id", "case_id"])
    op.create_index("referrals_received", "referrals", ["received_at"])
    _fill()
    op.create_index(
        "referrals_open", "referrals", ["case_id"], unique=True,
        sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN),
    )  # fmt: skip
    op.execute("DELETE FROM report_parts")


def downgrade() -> None:
    op.drop_index("referrals_open", "referrals")
    op.drop_index("referrals_received", "referrals")
    op.drop_index("referrals_department", "referrals")
    op.drop_index("referrals_case", "referrals")
    op.drop_table("referrals")
    op.execute("DELETE FROM report_parts")
