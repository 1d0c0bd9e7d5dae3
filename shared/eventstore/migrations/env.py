"""Alembic's entry point for the event store: run on the connection ``shared.eventstore.migrate``
hands over (``config.attributes["connection"]``); there is no alembic.ini."""

from alembic import context

from shared.eventstore.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
