"""events: one row per alert (started event), its clip, snapshot and review.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "event_id", sa.String(64), primary_key=True, comment="The started AlertEvent's deterministic id"
        ),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("track_id", sa.BigInteger, nullable=True),
        sa.Column(
            "first_seen_ns", sa.BigInteger, nullable=False, comment="Pairs the ended event with this one"
        ),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("box_x1", sa.Float, nullable=False),
        sa.Column("box_y1", sa.Float, nullable=False),
        sa.Column("box_x2", sa.Float, nullable=False),
        sa.Column("box_y2", sa.Float, nullable=False),
        sa.Column("frame_width", sa.Integer, nullable=False),
        sa.Column("frame_height", sa.Integer, nullable=False),
        sa.Column(
            "started_ms", sa.BigInteger, nullable=False, comment="Capture time of the frame that fired"
        ),
        sa.Column("ended_ms", sa.BigInteger, nullable=True),
        sa.Column("ended_event_id", sa.String(64), nullable=True),
        sa.Column("snapshot_path", sa.Text, nullable=True, comment="Relative to record.clips_dir"),
        sa.Column("snapshot_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clip_path", sa.Text, nullable=True, comment="Relative to record.clips_dir"),
        sa.Column("clip_state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("clip_error", sa.String(64), nullable=True),
        sa.Column("clip_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clip_start_ms", sa.BigInteger, nullable=True),
        sa.Column("clip_end_ms", sa.BigInteger, nullable=True),
        sa.Column("reviewed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_events_started", "events", ["started_ms", "event_id"])
    op.create_index("ix_events_camera_started", "events", ["camera", "started_ms"])
    op.create_index("ix_events_clip_state", "events", ["clip_state"])
    op.create_index("ix_events_pair", "events", ["camera", "rule", "first_seen_ns"])


def downgrade() -> None:
    op.drop_table("events")
