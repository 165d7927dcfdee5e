"""Alembic's entry point. `hotline.service.store.database.migrate` runs it with an open
connection (holding the migration lock) in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from hotline.service.store.schema import described, metadata

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=described,  # each engine's search structures are not in the metadata
    render_as_batch=True,  # SQLite changes a table by copying it; Alembic does it for us
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
