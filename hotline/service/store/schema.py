"""The schema, defined once for SQLite and PostgreSQL. Alembic's migrations (in `migrations/`)
build it step by step; a test checks that a migrated database matches this definition on both
engines. Times are UTC text (`to_utc_text`), which sorts as time on both; flags are 0/1.
The events and the directory log are append-only: a trigger refuses UPDATE and DELETE."""

from __future__ import annotations

from sqlalchemy import (
    REAL,
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

# Constraint names are the same on both engines, so errors and migrations can name them.
metadata = MetaData(
    naming_convention={
        "ix": "%(table_name)s_%(column_0_N_name)s",
        "uq": "%(table_name)s_%(column_0_name)s_key",
        "ck": "%(table_name)s_%(constraint_name)s",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "pk": "%(table_name)s_pkey",
    }
)

# Each engine's own full-text search over cases (migrations 0002, 0007 and 0010), which this
# definition does not describe: SQLite's FTS5 tables (and the shadow tables FTS5 keeps) over
# the cases' text, over the companies' names (`cases_search_companies`, with its table of
# names) and over the text's pairs of characters (`cases_search_bigrams`), PostgreSQL's
# pg_trgm indexes and its index of pairs (`cases_search_bigrams`). Comparisons of a database
# with this definition leave them out.
ENGINE_SEARCH = ("cases_search", "cases_text_trgm", "cases_company_trgm")


def described(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: False for the engine-specific search structures."""
    return not (name and name.startswith(ENGINE_SEARCH))


# The unfinished cases, as the console's in-work views ask for them (literally: a partial
# index serves a query only when the query's own condition matches its condition).
OPEN_CASES = (
    "status IN ('acknowledged', 'assigned', 'received', 'referred', 'reopened', 'responded')"
)

# The columns the reports count by (store/reports.py), in the index that serves them.
REPORT_COLUMNS = (
    "received_at", "channel", "category", "department_id", "assignee_id", "source_tag",
    "status", "first_response_at", "first_response_due", "resolved_at", "resolution_due",
    "reopens", "rating", "presidium", "referral_due", "referral_answered_at", "held_until",
    "company",
)  # fmt: skip

# Row ids that can pass 2^31 on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid.
RowId = BigInteger().with_variant(Integer(), "sqlite")
# Degrees of a position: DOUBLE PRECISION; REAL on SQLite (its STRICT tables take no other).
Degrees: Double[float] = Double().with_variant(REAL(), "sqlite")


def _id() -> Column[int]:
    return Column("id", RowId, primary_key=True, autoincrement=True)


def _flag(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default=text("0"))


members = Table(
    "members",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("phone", Text),
    Column("role", Text, nullable=False),
    Column("active", Integer, nullable=False, server_default=text("1")),
    Column("password_hash", Text),
    Column("password_changed_at", Text),
    sqlite_strict=True,
)

cases = Table(
    "cases",
    metadata,
    _id(),
    Column("code", Text, nullable=False, unique=True),
    Column("intake_key", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("language", Text, nullable=False),
    Column("category", Text),
    Column("company", Text),
    Column("submitter_name", Text),
    Column("submitter_phone", Text),
    Column("source_tag", Text),
    Column("assignee_id", Text, ForeignKey("members.id")),
    Column("received_at", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("rating", Integer),
    Column("rating_requested_at", Text),
    Column("rated_at", Text),
    Column("department_id", Text),
    Column("referral_due", Text),
    _flag("presidium"),
    Column("outcome", Text),
    Column("first_response_at", Text),
    Column("resolved_at", Text),
    Column("held_until", Text),
    Column("escalations", Integer, nullable=False, server_default=text("0")),
    Column("escalated_at", Text),
    _flag("urgent"),
    Column("waiting_since", Text),
    Column("taken_by", Text),
    _flag("reopens"),  # times reopened after a resolution
    Column("referral_answered_at", Text),  # the department's answer to the latest referral
    Column("closed_at", Text),  # when it was closed, withdrawn or rejected (None while open)
    # Its targets, as times: stored when it comes in, from the targets then in force.
    Column("first_response_due", Text),
    Column("resolution_due", Text),
    Column("reception_id", RowId),  # raised at a themed reception (receptions.id)
    # Where it is, as an Open311 client gave it: an address, a position (WGS 84 degrees).
    Column("address", Text),
    Column("latitude", Degrees),
    Column("longitude", Degrees),
    Index("cases_status", "status", "received_at"),
    Index("cases_assignee", "assignee_id", "status"),
    Index("cases_phone", "submitter_phone", "received_at"),
    Index("cases_updated", "updated_at"),
    Index("cases_category", "category", "status"),
    Index("cases_received", "received_at", "id"),  # the newest-first lists, page by page
    Index("cases_company", "company", "received_at", "id"),  # a company's, newest first
    # The in-work views (open, mine, overdue), newest first: a walk of open cases only.
    Index(
        "cases_open",
        "received_at",
        "id",
        sqlite_where=text(OPEN_CASES),
        postgresql_where=text(OPEN_CASES),
    ),
    # Cases stored without their due times, for fill_due_times to find (normally none).
    Index(
        "cases_undue",
        "id",
        sqlite_where=text("first_response_due IS NULL"),
        postgresql_where=text("first_response_due IS NULL"),
    ),
    # What the reports read of a case, in the order of receipt: a period's figures are
    # counted from this index alone, never from the (much wider) rows.
    Index("cases_report", *REPORT_COLUMNS),
    # The requests raised at a reception, counted by status on the event's page.
    Index(
        "cases_reception",
        "reception_id",
        "status",
        sqlite_where=text("reception_id IS NOT NULL"),
        postgresql_where=text("reception_id IS NOT NULL"),
    ),
    sqlite_strict=True,
)

events = Table(
    "events",
    metadata,
    _id(),
    Column("case_id", RowId, ForeignKey("cases.id"), nullable=False),
    Column("at", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("actor", Text),
    Column("detail", Text, nullable=False, server_default=text("'{}'")),
    Index("events_case", "case_id", "id"),
    sqlite_strict=True,
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column("purpose_key", Text, nullable=False, unique=True),
    Column("case_id", RowId, ForeignKey("cases.id")),
    Column("member_id", Text, ForeignKey("members.id")),
    Column("to_number", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("provider_sid", Text, unique=True),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("outbox_status", "status", "updated_at"),
    Index("outbox_case", "case_id", "id"),
    sqlite_strict=True,
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("case_id", RowId, ForeignKey("cases.id"), nullable=False),
    Column("direction", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("external_id", Text, unique=True),
    Column("body", Text, nullable=False),
    Column("media", Text, nullable=False, server_default=text("'[]'")),
    Column("at", Text, nullable=False),
    Column("outbox_id", RowId, ForeignKey("outbox.id")),
    Column("actor", Text),
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
    Index("messages_case", "case_id", "id"),
    sqlite_strict=True,
)

sms_optouts = Table(
    "sms_optouts",
    metadata,
    Column("number", Text, primary_key=True),
    Column("opted_out", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    sqlite_strict=True,
)

canned_replies = Table(
    "canned_replies",
    metadata,
    _id(),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    sqlite_strict=True,
)

duty_changes = Table(
    "duty_changes",
    metadata,
    _id(),
    Column("kind", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("starts_at", Text, nullable=False),
    Column("ends_at", Text, nullable=False),
    Column("swap_id", RowId),
    Column("note", Text, nullable=False, server_default=text("''")),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("removed_by", Text),
    Column("removed_at", Text),
    CheckConstraint("kind IN ('cover', 'away')", name="kind"),
    CheckConstraint("ends_at > starts_at", name="span"),
    Index("duty_changes_time", "kind", "ends_at"),
    sqlite_strict=True,
)

scheduler_state = Table(
    "scheduler_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_strict=True,
)

kiosk_devices = Table(
    "kiosk_devices",
    metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("revoked_by", Text),
    Column("revoked_at", Text),
    sqlite_strict=True,
)

source_tags = Table(
    "source_tags",
    metadata,
    Column("tag", Text, primary_key=True),
    Column("label", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    sqlite_strict=True,
)

directory_overrides = Table(
    "directory_overrides",
    metadata,
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("record", Text),
    Column("seq", Integer, nullable=False),
    Column("in_file", Integer, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    PrimaryKeyConstraint("kind", "key"),
    CheckConstraint("kind IN ('members', 'departments', 'categories')", name="kind"),
    sqlite_strict=True,
)

# API tokens (service/tokens.py): only the secret's SHA-256 is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("revoked_by", Text),
    Column("revoked_at", Text),
    Column("last_used_at", Text),
    CheckConstraint("scope IN ('read', 'write')", name="scope"),
    # A name belongs to one active token at a time.
    Index(
        "api_tokens_active_name",
        "name",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
    sqlite_strict=True,
)

# Partners' webhooks: every event a submitter could see is POSTed to each active one,
# signed with its secret (service/webhooks.py). The secret is kept as given: signing needs it.
webhooks = Table(
    "webhooks",
    metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("revoked_by", Text),
    Column("revoked_at", Text),
    Index(
        "webhooks_active_name",
        "name",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
    sqlite_strict=True,
)

# One row per (webhook, event): made in the write that records the event, so an event is
# offered to a partner once; its state says what became of the POSTs.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id(),
    Column("webhook_id", RowId, ForeignKey("webhooks.id"), nullable=False),
    Column("event_id", RowId, ForeignKey("events.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Text, nullable=False),
    Column("last_status", Integer),  # the partner's HTTP status, the last time
    Column("last_error", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("delivered_at", Text),
    CheckConstraint(
        "status IN ('queued', 'sending', 'retrying', 'delivered', 'failed')", name="status"
    ),
    Index("webhook_deliveries_webhook_id", "webhook_id", "event_id", unique=True),
    # The sender's look for work: only rows still to send are in it.
    Index(
        "webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status IN ('queued', 'retrying', 'sending')"),
        postgresql_where=text("status IN ('queued', 'retrying', 'sending')"),
    ),
    sqlite_strict=True,
)

# Themed reception events (主题接待): deputies and departments meet businesses face to face.
# `deputies` and `departments` are JSON lists of ids; `signed_up` counts the sign-ups, so a
# full event refuses the next one in the same write (the row is locked by the UPDATE).
receptions = Table(
    "receptions",
    metadata,
    _id(),
    Column("topic", Text, nullable=False),
    Column("details", Text, nullable=False, server_default=text("''")),
    Column("place", Text, nullable=False),
    Column("starts_at", Text, nullable=False),
    Column("ends_at", Text, nullable=False),
    Column("deputies", Text, nullable=False, server_default=text("'[]'")),
    Column("departments", Text, nullable=False, server_default=text("'[]'")),
    Column("capacity", Integer, nullable=False),
    Column("signed_up", Integer, nullable=False, server_default=text("0")),
    # Each change of the plan counts up: texts about it and the .ics's SEQUENCE follow it.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("updated_at", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("cancelled_by", Text),
    Column("cancelled_at", Text),
    CheckConstraint("signed_up <= capacity", name="seats"),
    Index("receptions_starts", "starts_at"),
    sqlite_strict=True,
)

# Businesses signed up for a reception: one sign-up per phone number and event.
reception_signups = Table(
    "reception_signups",
    metadata,
    _id(),
    Column("reception_id", RowId, ForeignKey("receptions.id"), nullable=False),
    Column("company", Text, nullable=False),
    Column("contact", Text, nullable=False),
    Column("phone", Text, nullable=False),
    Column("raise_text", Text, nullable=False),  # what they want to raise
    Column("language", Text, nullable=False),  # of the page they signed up on: the reminder's
    Column("created_at", Text, nullable=False),
    Column("reminded_at", Text),  # the day-before reminder was queued (outbox) at
    Index("reception_signups_phone", "reception_id", "phone", unique=True),
    sqlite_strict=True,
)

# Sign-ups a head withdrew: the sign-up as it was, and when and by whom (a member's id).
reception_withdrawals = Table(
    "reception_withdrawals",
    metadata,
    _id(),
    Column("reception_id", RowId, ForeignKey("receptions.id"), nullable=False),
    Column("company", Text, nullable=False),
    Column("contact", Text, nullable=False),
    Column("phone", Text, nullable=False),
    Column("raise_text", Text, nullable=False),
    Column("signed_up_at", Text, nullable=False),
    Column("withdrawn_at", Text, nullable=False),
    Column("withdrawn_by", Text, nullable=False),
    Index("reception_withdrawals_reception", "reception_id", "id"),
    sqlite_strict=True,
)

# Every referral (交办) a case had, oldest first: the case's own columns (department_id,
# referral_due, referral_answered_at) are its latest. Kept from the event log as it is
# written (store/cases `add_event`, rules in service/workflow): answered_at when the
# department answered (or the case was resolved while waiting), ended_at when it was taken
# back unanswered (referred again, reassigned, withdrawn, rejected). At most one is open.
referrals = Table(
    "referrals",
    metadata,
    _id(),
    Column("case_id", RowId, ForeignKey("cases.id"), nullable=False),
    Column("received_at", Text, nullable=False),  # the case's: a report's period reads by it
    Column("department_id", Text, nullable=False),
    Column("referred_at", Text, nullable=False),
    Column("due", Text, nullable=False),
    Column("answered_at", Text),
    Column("ended_at", Text),
    Index("referrals_case", "case_id", "id"),
    Index("referrals_department", "department_id", "case_id"),  # a department's, for a list
    Index("referrals_received", "received_at"),
    Index(
        "referrals_open",
        "case_id",
        unique=True,
        sqlite_where=text("answered_at IS NULL AND ended_at IS NULL"),
        postgresql_where=text("answered_at IS NULL AND ended_at IS NULL"),
    ),
    sqlite_strict=True,
)

# Every rating a submitter gave, oldest first: the case's own `rating` is its latest. A case
# resolved, rated low (reopened), resolved again and rated again has two, and the
# satisfaction rate counts both (DESIGN: ratings of 4 or 5 of the ratings given). Each is
# credited to the member whose handling was rated (`member_id`: the case's member when the
# rating came, before a low one hands it to the standing head). Kept as the `rated` event is
# written (store/cases `add_event`).
ratings = Table(
    "ratings",
    metadata,
    _id(),
    Column("case_id", RowId, ForeignKey("cases.id"), nullable=False),
    Column("received_at", Text, nullable=False),  # the case's: a report's period reads by it
    Column("member_id", Text),
    Column("rating", Integer, nullable=False),
    Column("rated_at", Text, nullable=False),
    Index("ratings_case", "case_id", "id"),
    Index("ratings_member", "member_id", "case_id"),  # a member's, for a list
    Index("ratings_received", "received_at"),
    sqlite_strict=True,
)

# The reports' figures of past months, kept (store/reports.py `save_part`): a year's report
# reads eleven of these and counts only the current month.
report_parts = Table(
    "report_parts",
    metadata,
    Column("scope", Text, nullable=False),  # a member's id, or '' for the whole point
    Column("since", Text, nullable=False),
    Column("until", Text, nullable=False),
    Column("computed_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("body", Text, nullable=False),
    PrimaryKeyConstraint("scope", "since", "until"),
    sqlite_strict=True,
)

directory_log = Table(
    "directory_log",
    metadata,
    _id(),
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("record", Text),
    Column("actor", Text, nullable=False),
    Column("at", Text, nullable=False),
    sqlite_strict=True,
)
