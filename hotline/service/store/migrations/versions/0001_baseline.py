"""Baseline: the schema of the first releases (SQLite files from them, at PRAGMA
user_version 6, are stamped with this revision rather than migrated).

Revision ID: 0001
Revises:
Create Date: 2026-11-26 02:09:11.344061
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# The table names and messages as they were when this revision was written.
APPEND_ONLY = {
    "events": "events are append-only",
    "directory_log": "the directory log is append-only",
}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("canned_replies_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "directory_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("directory_log_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "directory_overrides",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("in_file", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('members', 'departments', 'categories')",
            name=op.f("directory_overrides_kind"),
        ),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("directory_overrides_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "duty_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.Text(), nullable=False),
        sa.Column("ends_at", sa.Text(), nullable=False),
        sa.Column("swap_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("note", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("removed_by", sa.Text(), nullable=True),
        sa.Column("removed_at", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('cover', 'away')", name=op.f("duty_changes_kind")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("duty_changes_span")),
        sa.PrimaryKeyConstraint("id", name=op.f("duty_changes_pkey")),
        sqlite_strict=True,
    )
    with op.batch_alter_table("duty_changes", schema=None) as batch_op:
        batch_op.create_index("duty_changes_time", ["kind", "ends_at"], unique=False)

    op.create_table(
        "kiosk_devices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revoked_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("kiosk_devices_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("kiosk_devices_token_hash_key")),
        sqlite_strict=True,
    )
    op.create_table(
        "members",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("active", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("password_changed_at", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("members_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("scheduler_state_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "sms_optouts",
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("sms_optouts_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "source_tags",
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("source_tags_pkey")),
        sqlite_strict=True,
    )
    op.create_table(
        "cases",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("intake_key", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("submitter_name", sa.Text(), nullable=True),
        sa.Column("submitter_phone", sa.Text(), nullable=True),
        sa.Column("source_tag", sa.Text(), nullable=True),
        sa.Column("assignee_id", sa.Text(), nullable=True),
        sa.Column("received_at", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_requested_at", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.Text(), nullable=True),
        sa.Column("department_id", sa.Text(), nullable=True),
        sa.Column("referral_due", sa.Text(), nullable=True),
        sa.Column("presidium", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("first_response_at", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.Text(), nullable=True),
        sa.Column("held_until", sa.Text(), nullable=True),
        sa.Column("escalations", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("escalated_at", sa.Text(), nullable=True),
        sa.Column("urgent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("waiting_since", sa.Text(), nullable=True),
        sa.Column("taken_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["members.id"], name=op.f("cases_assignee_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("cases_pkey")),
        sa.UniqueConstraint("code", name=op.f("cases_code_key")),
        sa.UniqueConstraint("intake_key", name=op.f("cases_intake_key_key")),
        sqlite_strict=True,
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("cases_assignee", ["assignee_id", "status"], unique=False)
        batch_op.create_index("cases_category", ["category", "status"], unique=False)
        batch_op.create_index("cases_phone", ["submitter_phone", "received_at"], unique=False)
        batch_op.create_index("cases_status", ["status", "received_at"], unique=False)
        batch_op.create_index("cases_updated", ["updated_at"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("events_case_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("events_pkey")),
        sqlite_strict=True,
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("events_case", ["case_id", "id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("purpose_key", sa.Text(), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("member_id", sa.Text(), nullable=True),
        sa.Column("to_number", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("provider_sid", sa.Text(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("outbox_case_id_fkey")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("outbox_member_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("outbox_pkey")),
        sa.UniqueConstraint("provider_sid", name=op.f("outbox_provider_sid_key")),
        sa.UniqueConstraint("purpose_key", name=op.f("outbox_purpose_key_key")),
        sqlite_strict=True,
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("outbox_case", ["case_id", "id"], unique=False)
        batch_op.create_index("outbox_status", ["status", "updated_at"], unique=False)

    op.create_table(
        "messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("at", sa.Text(), nullable=False),
        sa.Column("outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f("messages_direction")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("messages_case_id_fkey")),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name=op.f("messages_outbox_id_fkey")),
        sa.PrimaryKeyConstraint("id", name=op.f("messages_pkey")),
        sa.UniqueConstraint("external_id", name=op.f("messages_external_id_key")),
        sqlite_strict=True,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("messages_case", ["case_id", "id"], unique=False)

    for table, message in APPEND_ONLY.items():
        append_only(table, message)


def append_only(table: str, message: str) -> None:
    """A trigger that refuses UPDATE and DELETE on `table`, on either engine."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION refuse_change('{message}')"
        )
        return
    for change in ("update", "delete"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only_{change} BEFORE {change.upper()} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("messages_case")

    op.drop_table("messages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("outbox_status")
        batch_op.drop_index("outbox_case")

    op.drop_table("outbox")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("events_case")

    op.drop_table("events")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("cases_updated")
        batch_op.drop_index("cases_status")
        batch_op.drop_index("cases_phone")
        batch_op.drop_index("cases_category")
        batch_op.drop_index("cases_assignee")

    op.drop_table("cases")
    op.drop_table("source_tags")
    op.drop_table("sms_optouts")
    op.drop_table("scheduler_state")
    op.drop_table("members")
    op.drop_table("kiosk_devices")
    with op.batch_alter_table("duty_changes", schema=None) as batch_op:
        batch_op.drop_index("duty_changes_time")

    op.drop_table("duty_changes")
    op.drop_table("directory_overrides")
    op.drop_table("directory_log")
    op.drop_table("canned_replies")
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS refuse_change()")
