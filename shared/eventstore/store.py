"""EventStore: alert events, their clips and snapshots, and the operators' review, in a database.

SQLite by default (one file, WAL journal, so the recorder writes while ``vigil web`` reads), or
PostgreSQL by URL (``postgresql://`` or ``postgresql+psycopg://``) for replicas on several hosts.
One row per alert: the ``started`` event makes it (its deterministic ``event_id`` is the key, so a
replayed event changes nothing), the matching ``ended`` event closes it, the recorder fills in the
clip and the snapshot, an operator marks it reviewed and writes a note.

Paths are stored relative to ``record.clips_dir``: the web console joins them to its own copy of
the folder (a volume mounted elsewhere). Errors are translated where they enter:
:class:`EventStoreUnavailable` (the database does not answer) and :class:`EventStoreError` (it
refused, or its schema is not this build's); their messages never carry the URL's password.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from shared.errors import EventStoreError, EventStoreUnavailable
from shared.eventstore import migrate
from shared.eventstore.schema import events
from shared.logs import redact
from shared.schemas import AlertEvent, Box

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_PAGE = 500
SQLITE_BUSY_TIMEOUT_MS = 10_000


class ClipState(StrEnum):
    PENDING = "pending"
    """The recorder has not finished the clip (or not started it: it is re-cut after a restart)."""
    DONE = "done"
    FAILED = "failed"
    """No clip: ``clip_error`` says why (``frames_gone``, ``disk_full``, ``encoder``)."""
    DELETED = "deleted"
    """Removed by retention (size or free space); the event itself is kept."""


@dataclass(frozen=True)
class EventRecord:
    """One row of the store. Times are Unix ms; paths are relative to ``record.clips_dir``."""

    event_id: str
    camera: str
    rule: str
    severity: str
    label: str
    track_id: int | None
    first_seen_ns: int
    score: float
    box: Box
    """xyxy in pixels of a ``frame_width`` × ``frame_height`` frame."""
    frame_width: int
    frame_height: int
    started_ms: int
    ended_ms: int | None
    snapshot_path: str | None
    snapshot_bytes: int
    clip_path: str | None
    clip_state: ClipState
    clip_error: str | None
    clip_bytes: int
    clip_start_ms: int | None
    """Time of the clip's first frame (seek to ``started_ms - clip_start_ms`` for the alert)."""
    clip_end_ms: int | None
    reviewed: bool
    note: str | None
    created_ms: int
    updated_ms: int

    @classmethod
    def from_row(cls, row: sa.Row) -> EventRecord:
        m = row._mapping
        return cls(
            event_id=m["event_id"], camera=m["camera"], rule=m["rule"], severity=m["severity"],
            label=m["label"], track_id=m["track_id"], first_seen_ns=m["first_seen_ns"], score=m["score"],
            box=(m["box_x1"], m["box_y1"], m["box_x2"], m["box_y2"]),
            frame_width=m["frame_width"], frame_height=m["frame_height"],
            started_ms=m["started_ms"], ended_ms=m["ended_ms"],
            snapshot_path=m["snapshot_path"], snapshot_bytes=m["snapshot_bytes"],
            clip_path=m["clip_path"], clip_state=ClipState(m["clip_state"]), clip_error=m["clip_error"],
            clip_bytes=m["clip_bytes"], clip_start_ms=m["clip_start_ms"], clip_end_ms=m["clip_end_ms"],
            reviewed=bool(m["reviewed"]), note=m["note"], created_ms=m["created_ms"],
            updated_ms=m["updated_ms"],
        )  # fmt: skip


@dataclass(frozen=True)
class EventPage:
    """One page of a query, newest first; ``next_cursor`` (None on the last page) is the ``before``
    of the next one."""

    events: tuple[EventRecord, ...]
    next_cursor: str | None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def engine_url(url: str) -> sa.URL:
    """``url`` as SQLAlchemy reads it; plain ``postgresql://`` means psycopg 3 (the driver we ship)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise EventStoreError(f"not a database URL: {redact(url)}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise EventStoreError(f"event store: sqlite:/// or postgresql:// only, not {parsed.drivername}")
    return parsed


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint, never corrupt
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite in WAL mode (its folder made if missing), or PostgreSQL."""
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})


def _guard(what: str, op: Callable[[], T]) -> T:
    """Run ``op``, translating the driver's errors into ours (no URL, no parameters in the message)."""
    try:
        return op()
    except OperationalError as error:
        raise EventStoreUnavailable(f"event store: {what}: {_reason(error)}") from None
    except DBAPIError as error:
        if error.connection_invalidated:
            raise EventStoreUnavailable(f"event store: {what}: connection lost") from None
        raise EventStoreError(f"event store: {what}: {_reason(error)}") from None
    except SQLAlchemyError as error:
        raise EventStoreError(f"event store: {what}: {type(error).__name__}") from None


def _reason(error: DBAPIError) -> str:
    """The driver's own first line, redacted (PostgreSQL's can name the host and user)."""
    text = str(error.orig).strip().splitlines()
    return redact(text[0][:200]) if text else type(error.orig).__name__


def _insert(dialect: str) -> Callable[..., Any]:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def parse_cursor(cursor: str) -> tuple[int, str]:
    """``"<started_ms>-<event_id>"`` → its parts; ValueError for anything else."""
    ms, sep, event_id = cursor.partition("-")
    if not sep or not ms.isdigit() or not event_id or len(event_id) > 64:
        raise ValueError(f"not a page cursor: {cursor[:80]!r}")
    return int(ms), event_id


def upgrade_schema(url: str) -> tuple[str | None, str]:
    """Migrate the store at ``url`` to this build's schema (``vigil record --upgrade-db``);
    (the revision before, the revision now)."""
    engine = make_engine(url)
    try:
        return _guard("schema upgrade", lambda: migrate.upgrade(engine))
    finally:
        engine.dispose()


class EventStore:
    """The store's whole API; thread-safe (a connection per call, from SQLAlchemy's pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = _insert(engine.dialect.name)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> EventStore:
        """Connect; with ``upgrade`` migrate the schema to this build's, else refuse another one."""
        engine = make_engine(url)
        if upgrade:
            before, now = _guard("schema upgrade", lambda: migrate.upgrade(engine))
            if before != now:
                log.info("event store schema upgraded from %s to %s", before or "empty", now)
        else:
            found = _guard("schema check", lambda: migrate.current(engine))
            if found != migrate.head():
                engine.dispose()
                raise EventStoreError(
                    f"event store schema is {found or 'empty'}, this build reads {migrate.head()}: "
                    "run vigil record --upgrade-db"
                )
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def _run(self, what: str, op: Callable[[sa.Connection], T]) -> T:
        def transaction() -> T:
            with self.engine.begin() as connection:
                return op(connection)

        return _guard(what, transaction)

    # -- the recorder writes --------------------------------------------------------------------

    def record_started(self, event: AlertEvent) -> bool:
        """Add the alert of a ``started`` event; False if it is there already (a replay)."""
        if event.kind != "started":
            raise ValueError(f"record_started: event {event.event_id} is {event.kind}")
        stamp = now_ms()
        x1, y1, x2, y2 = event.box
        values = dict(
            event_id=event.event_id, camera=event.camera, rule=event.rule, severity=event.severity,
            label=event.label, track_id=event.track_id, first_seen_ns=event.first_seen_ns,
            score=event.score, box_x1=x1, box_y1=y1, box_x2=x2, box_y2=y2,
            frame_width=event.frame_width, frame_height=event.frame_height,
            started_ms=event.ts_ns // 1_000_000, clip_state=ClipState.PENDING.value,
            reviewed=False, created_ms=stamp, updated_ms=stamp,
        )  # fmt: skip
        statement = (
            self._insert(events).values(**values)
            .on_conflict_do_nothing(index_elements=["event_id"]).returning(events.c.event_id)
        )  # fmt: skip
        return self._run("record started", lambda c: c.execute(statement).first() is not None)

    def record_ended(self, event: AlertEvent) -> str | None:
        """Close the alert an ``ended`` event belongs to (same camera, rule, track and first
        sighting); the started event's id, or None when no open alert matches."""
        if event.kind != "ended":
            raise ValueError(f"record_ended: event {event.event_id} is {event.kind}")
        track = events.c.track_id.is_(None) if event.track_id is None else events.c.track_id == event.track_id
        match = sa.and_(
            events.c.camera == event.camera, events.c.rule == event.rule,
            events.c.first_seen_ns == event.first_seen_ns, track,
        )  # fmt: skip

        def close(connection: sa.Connection) -> str | None:
            found = connection.execute(sa.select(events.c.event_id, events.c.ended_event_id).where(match)
                                       .order_by(events.c.started_ms.desc()).limit(1)).first()  # fmt: skip
            if found is None:
                return None
            if found.ended_event_id is None:
                connection.execute(
                    events.update()
                    .where(events.c.event_id == found.event_id)
                    .values(
                        ended_ms=event.ts_ns // 1_000_000, ended_event_id=event.event_id, updated_ms=now_ms()
                    )
                )
            return found.event_id

        return self._run("record ended", close)

    def set_clip(
        self,
        event_id: str,
        *,
        state: ClipState,
        path: str | None = None,
        size_bytes: int = 0,
        start_ms: int | None = None,
        end_ms: int | None = None,
        error: str | None = None,
    ) -> None:
        """The clip's outcome: ``done`` with its path, size and time span, or ``failed`` with a reason."""
        self._update("set clip", event_id, clip_state=state.value, clip_path=path, clip_bytes=size_bytes,
                     clip_start_ms=start_ms, clip_end_ms=end_ms, clip_error=error)  # fmt: skip

    def set_snapshot(self, event_id: str, *, path: str | None, size_bytes: int = 0) -> None:
        self._update("set snapshot", event_id, snapshot_path=path, snapshot_bytes=size_bytes)

    def drop_media(self, event_id: str) -> None:
        """Retention took the clip and snapshot files: forget their paths, keep the event."""
        self._update("drop media", event_id, clip_state=ClipState.DELETED.value, clip_path=None, clip_bytes=0,
                     snapshot_path=None, snapshot_bytes=0)  # fmt: skip

    def delete(self, event_ids: Sequence[str]) -> int:
        """Remove events altogether (retention by age); how many rows went."""
        if not event_ids:
            return 0
        statement = events.delete().where(events.c.event_id.in_(list(event_ids)))
        return self._run("delete", lambda c: c.execute(statement).rowcount)

    def _update(self, what: str, event_id: str, **values: Any) -> bool:
        statement = events.update().where(events.c.event_id == event_id).values(**values, updated_ms=now_ms())
        return self._run(what, lambda c: c.execute(statement).rowcount == 1)

    # -- operators ------------------------------------------------------------------------------

    def review(self, event_id: str, *, reviewed: bool, note: str | None = None) -> EventRecord | None:
        """Mark an event reviewed (or not); ``note`` replaces the note (None keeps it, "" clears it).
        The updated event, or None when there is no such event."""
        values: dict[str, Any] = {"reviewed": reviewed}
        if note is not None:
            values["note"] = note or None
        if not self._update("review", event_id, **values):
            return None
        return self.get(event_id)

    # -- reads ----------------------------------------------------------------------------------

    def get(self, event_id: str) -> EventRecord | None:
        statement = sa.select(events).where(events.c.event_id == event_id)
        row = self._run("get", lambda c: c.execute(statement).first())
        return None if row is None else EventRecord.from_row(row)

    def query(
        self,
        *,
        camera: str | None = None,
        label: str | None = None,
        rule: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        reviewed: bool | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> EventPage:
        """Events newest first (by ``started_ms``), filtered; ``since_ms`` inclusive, ``until_ms``
        exclusive; ``before`` is a page's ``next_cursor``. ValueError for a bad limit or cursor."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}")
        c = events.c
        equal = {c.camera: camera, c.label: label, c.rule: rule, c.reviewed: reviewed}
        conditions = [column == value for column, value in equal.items() if value is not None]
        if since_ms is not None:
            conditions.append(c.started_ms >= since_ms)
        if until_ms is not None:
            conditions.append(c.started_ms < until_ms)
        if before is not None:
            ms, event_id = parse_cursor(before)
            conditions.append(sa.or_(c.started_ms < ms, sa.and_(c.started_ms == ms, c.event_id < event_id)))
        statement = (
            sa.select(events).where(*conditions)
            .order_by(c.started_ms.desc(), c.event_id.desc()).limit(limit + 1)
        )  # fmt: skip
        rows = self._run("query", lambda conn: conn.execute(statement).all())
        found = tuple(EventRecord.from_row(row) for row in rows[:limit])
        more = len(rows) > limit
        return EventPage(found, f"{found[-1].started_ms}-{found[-1].event_id}" if more else None)

    def cameras(self) -> list[str]:
        """Every camera with an event in the store."""
        statement = sa.select(events.c.camera).distinct().order_by(events.c.camera)
        return self._run("cameras", lambda c: list(c.execute(statement).scalars()))

    def pending_clips(self, cameras: Iterable[str] | None = None) -> list[EventRecord]:
        """Events whose clip is not finished, oldest first (optionally of some cameras only)."""
        statement = sa.select(events).where(events.c.clip_state == ClipState.PENDING.value)
        if cameras is not None:
            statement = statement.where(events.c.camera.in_(list(cameras)))
        statement = statement.order_by(events.c.started_ms, events.c.event_id)
        return self._run("pending clips", lambda c: [EventRecord.from_row(r) for r in c.execute(statement)])

    # -- retention ------------------------------------------------------------------------------

    def started_before(self, camera: str, before_ms: int, *, limit: int = 100) -> list[EventRecord]:
        """The camera's oldest events started before ``before_ms`` (retention by age), oldest first."""
        statement = (
            sa.select(events).where(events.c.camera == camera, events.c.started_ms < before_ms)
            .order_by(events.c.started_ms, events.c.event_id).limit(limit)
        )  # fmt: skip
        return self._run("started before", lambda c: [EventRecord.from_row(r) for r in c.execute(statement)])

    def media_bytes(self, camera: str) -> int:
        """Bytes of the camera's clips and snapshots on disk (as recorded)."""
        total = sa.func.coalesce(sa.func.sum(events.c.clip_bytes + events.c.snapshot_bytes), 0)
        statement = sa.select(total).where(events.c.camera == camera)
        return int(self._run("media bytes", lambda c: c.execute(statement).scalar_one()))

    def oldest_with_media(self, *, camera: str | None = None, limit: int = 100) -> list[EventRecord]:
        """The oldest events that still have a finished clip or a snapshot (retention by size)."""
        c = events.c
        statement = sa.select(events).where(
            c.clip_state != ClipState.PENDING.value, (c.clip_bytes + c.snapshot_bytes) > 0
        )
        if camera is not None:
            statement = statement.where(c.camera == camera)
        statement = statement.order_by(c.started_ms, c.event_id).limit(limit)
        return self._run(
            "oldest with media", lambda conn: [EventRecord.from_row(r) for r in conn.execute(statement)]
        )
