"""A text the SMS provider has queued is not ours to send again.

Twilio answers a send with its own status "queued" (accepted, not yet out). It was stored as
is, the word the outbox uses for a row not yet handed over, so a row whose status callback
never came (callbacks unreachable, or late) looked unsent: the sweep took it again a minute
later, and again after that. It is stored as "queued-provider" now (as Twilio's "sending" is
"sending-provider"), and the rows already handed over (they have the provider's sid) move to
it here. Going back moves them back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 23:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE outbox SET status = 'queued-provider'"
        " WHERE status = 'queued' AND provider_sid IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("UPDATE outbox SET status = 'queued' WHERE status = 'queued-provider'")
