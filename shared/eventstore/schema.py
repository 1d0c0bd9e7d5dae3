"""The event store's tables, as SQLAlchemy Core metadata: what the code reads and writes.

The database gets them through the Alembic migrations in ``migrations/versions`` (never through
``metadata.create_all``); ``tests/shared/test_eventstore.py`` checks that the migrations, run from
an empty database, give exactly these tables. A change here needs a new migration.

Times are Unix milliseconds (``BIGINT``), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("event_id", String(64), primary_key=True, comment="The started AlertEvent's deterministic id"),
    Column("camera", String(64), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("label", String(64), nullable=False),
    Column("track_id", BigInteger, nullable=True),
    Column("first_seen_ns", BigInteger, nullable=False, comment="Pairs the ended event with this one"),
    Column("score", Float, nullable=False),
    Column("box_x1", Float, nullable=False),
    Column("box_y1", Float, nullable=False),
    Column("box_x2", Float, nullable=False),
    Column("box_y2", Float, nullable=False),
    Column("frame_width", Integer, nullable=False),
    Column("frame_height", Integer, nullable=False),
    Column("started_ms", BigInteger, nullable=False, comment="Capture time of the frame that fired"),
    Column("ended_ms", BigInteger, nullable=True),
    Column("ended_event_id", String(64), nullable=True),
    Column("snapshot_path", Text, nullable=True, comment="Relative to record.clips_dir"),
    Column("snapshot_bytes", BigInteger, nullable=False, server_default="0"),
    Column("clip_path", Text, nullable=True, comment="Relative to record.clips_dir"),
    Column("clip_state", String(16), nullable=False, server_default="pending"),
    Column("clip_error", String(64), nullable=True),
    Column("clip_bytes", BigInteger, nullable=False, server_default="0"),
    Column("clip_start_ms", BigInteger, nullable=True),
    Column("clip_end_ms", BigInteger, nullable=True),
    Column("reviewed", Boolean, nullable=False, server_default=false()),
    Column("note", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_events_started", "started_ms", "event_id"),
    Index("ix_events_camera_started", "camera", "started_ms"),
    Index("ix_events_clip_state", "clip_state"),
    Index("ix_events_pair", "camera", "rule", "first_seen_ns"),
)
