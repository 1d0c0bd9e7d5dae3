"""The event store on real databases: SQLite (a file in WAL mode) and a private PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shared.errors import EventStoreError, EventStoreUnavailable
from shared.eventstore import ClipState, EventStore, migrate
from shared.eventstore.schema import metadata
from shared.eventstore.store import make_engine
from shared.redis import free_port
from shared.schemas import AlertEvent
from tests.support.postgres import PrivatePostgres


def alert(
    kind: str = "started",
    *,
    event_id: str = "e1",
    camera: str = "cam1",
    ts_ms: int = 1_000_000,
    track_id: int | None = 7,
    first_seen_ns: int = 999_000_000,
    label: str = "pistol",
) -> AlertEvent:
    return AlertEvent(
        event_id=event_id, kind=kind, rule="gun", severity="critical", camera=camera, label=label,  # type: ignore[arg-type]
        score=0.91, box=(10.0, 20.0, 110.0, 220.0), box_norm=(0.0156, 0.0417, 0.1719, 0.4583),
        frame_width=640, frame_height=480, track_id=track_id, first_seen_ns=first_seen_ns,
        ts_ns=ts_ms * 1_000_000, seq=42, snapshot=None,
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store/events.db"
    server: PrivatePostgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    opened = EventStore.open(store_url)
    yield opened
    opened.close()


def test_migrations_from_empty_give_the_declared_schema(store_url: str) -> None:
    engine = make_engine(store_url)
    assert migrate.current(engine) is None
    assert migrate.upgrade(engine) == (None, migrate.head())
    assert migrate.upgrade(engine) == (migrate.head(), migrate.head())  # again: nothing to do
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    engine.dispose()


def test_a_reader_refuses_a_schema_it_does_not_read(store_url: str) -> None:
    with pytest.raises(EventStoreError, match="vigil record --upgrade-db"):
        EventStore.open(store_url, upgrade=False)
    EventStore.open(store_url).close()
    EventStore.open(store_url, upgrade=False).close()


def test_sqlite_is_one_file_in_wal_mode(tmp_path: Path) -> None:
    EventStore.open(f"sqlite:///{tmp_path}/a/events.db").close()
    with sqlite3.connect(tmp_path / "a" / "events.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_started_then_ended_is_one_event(store: EventStore) -> None:
    assert store.record_started(alert())
    assert not store.record_started(alert())  # a replay changes nothing
    opened = store.get("e1")
    assert opened is not None
    assert (opened.camera, opened.label, opened.rule, opened.started_ms) == (
        "cam1",
        "pistol",
        "gun",
        1_000_000,
    )
    assert opened.box == (10.0, 20.0, 110.0, 220.0) and (opened.frame_width, opened.frame_height) == (
        640,
        480,
    )
    assert opened.ended_ms is None and opened.clip_state is ClipState.PENDING and not opened.reviewed
    assert store.record_ended(alert("ended", event_id="x1", ts_ms=1_004_000)) == "e1"
    assert store.record_ended(alert("ended", event_id="x2", ts_ms=1_009_000)) == "e1"  # the first end stays
    closed = store.get("e1")
    assert closed is not None and closed.ended_ms == 1_004_000
    assert store.get("x1") is None


def test_an_ended_event_pairs_by_track_and_first_sighting(store: EventStore) -> None:
    store.record_started(alert(event_id="a", track_id=None))
    store.record_started(alert(event_id="b", track_id=8))
    assert store.record_ended(alert("ended", event_id="z", track_id=3)) is None
    assert store.record_ended(alert("ended", event_id="y", track_id=None)) == "a"
    assert store.record_ended(alert("ended", event_id="w", track_id=8, first_seen_ns=1)) is None


def test_clip_snapshot_and_review(store: EventStore) -> None:
    store.record_started(alert())
    store.set_snapshot("e1", path="cam1/2024-01-01/e1.jpg", size_bytes=1234)
    store.set_clip("e1", state=ClipState.DONE, path="cam1/2024-01-01/e1.mp4", size_bytes=99_000,
                   start_ms=995_000, end_ms=1_010_000)  # fmt: skip
    assert store.pending_clips() == []
    assert store.media_bytes("cam1") == 100_234
    reviewed = store.review("e1", reviewed=True, note="a toy, not a gun")
    assert reviewed is not None and reviewed.reviewed and reviewed.note == "a toy, not a gun"
    assert reviewed.clip_path == "cam1/2024-01-01/e1.mp4" and reviewed.clip_start_ms == 995_000
    kept = store.review("e1", reviewed=False)
    assert kept is not None and not kept.reviewed and kept.note == "a toy, not a gun"
    cleared = store.review("e1", reviewed=False, note="")
    assert cleared is not None and cleared.note is None
    assert store.review("nope", reviewed=True) is None


def test_query_filters_and_pages_newest_first(store: EventStore) -> None:
    for index in range(7):
        store.record_started(alert(event_id=f"e{index}", camera=f"cam{index % 2}", ts_ms=1000 + index // 2,
                                   label="pistol" if index < 5 else "knife"))  # fmt: skip
    store.review("e3", reviewed=True)
    ids, cursor = [], None
    while True:
        page = store.query(limit=3, before=cursor)
        ids += [e.event_id for e in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert ids == ["e6", "e5", "e4", "e3", "e2", "e1", "e0"]  # equal started_ms: by id, descending
    assert [e.event_id for e in store.query(camera="cam1").events] == ["e5", "e3", "e1"]
    assert [e.event_id for e in store.query(label="knife").events] == ["e6", "e5"]
    assert [e.event_id for e in store.query(reviewed=True).events] == ["e3"]
    assert [e.event_id for e in store.query(since_ms=1001, until_ms=1003).events] == ["e5", "e4", "e3", "e2"]
    assert store.cameras() == ["cam0", "cam1"]
    for bad in ({"limit": 0}, {"limit": 10_000}, {"before": "nonsense"}, {"before": "12-"}):
        with pytest.raises(ValueError):
            store.query(**bad)  # type: ignore[arg-type]


def test_pending_and_retention_helpers(store: EventStore) -> None:
    for index in range(4):
        store.record_started(alert(event_id=f"e{index}", ts_ms=1000 * (index + 1)))
    store.set_clip("e0", state=ClipState.DONE, path="cam1/e0.mp4", size_bytes=10)
    store.set_clip("e1", state=ClipState.FAILED, error="frames_gone")
    assert [e.event_id for e in store.pending_clips()] == ["e2", "e3"]
    assert [e.event_id for e in store.pending_clips(["cam9"])] == []
    assert [e.event_id for e in store.oldest_with_media(camera="cam1")] == ["e0"]
    store.drop_media("e0")
    dropped = store.get("e0")
    assert dropped is not None and dropped.clip_state is ClipState.DELETED and dropped.clip_path is None
    assert store.media_bytes("cam1") == 0
    assert [e.event_id for e in store.started_before("cam1", 3000)] == ["e0", "e1"]
    assert store.delete(["e0", "e1"]) == 2
    assert store.get("e0") is None and store.delete([]) == 0


def test_an_unreachable_database_is_our_error_without_the_password() -> None:
    url = f"postgresql://vigil:s3cret-pw@127.0.0.1:{free_port()}/events"
    with pytest.raises(EventStoreUnavailable) as caught:
        EventStore.open(url)
    assert "s3cret-pw" not in str(caught.value)
    with pytest.raises(EventStoreError, match="sqlite:/// or postgresql://"):
        EventStore.open("mysql://root@127.0.0.1/x")


def test_a_replayed_event_is_one_row_even_with_a_new_snapshot(store: EventStore) -> None:
    store.record_started(alert())
    assert not store.record_started(replace(alert(), snapshot="vigil:{cam1}:snapshot:e1"))
    assert store.query().events[0].event_id == "e1" and len(store.query().events) == 1
