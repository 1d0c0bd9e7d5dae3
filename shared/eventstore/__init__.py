"""The event store: alert events, their clips and snapshots, and their review (docs/recorder.md).

``vigil record`` writes it, ``vigil web`` reads it and records reviews. SQLite by default,
PostgreSQL by URL; the schema is versioned with Alembic (``shared/eventstore/migrate.py``).
"""

from shared.eventstore.store import ClipState, EventPage, EventRecord, EventStore, parse_cursor

__all__ = ["ClipState", "EventPage", "EventRecord", "EventStore", "parse_cursor"]
