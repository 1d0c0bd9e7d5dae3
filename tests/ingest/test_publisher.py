"""The frame publisher continues a camera's sequence, unless the stream's last seq was poisoned."""

from __future__ import annotations

import redis

from ingest.metrics import IngestMetrics
from ingest.publisher import FramePublisher
from shared import keys
from shared.backoff import Backoff


def publisher(client: redis.Redis, metrics: IngestMetrics) -> FramePublisher:
    return FramePublisher(client, camera="gate", maxlen=100, metrics=metrics, backoff=Backoff())


def test_the_sequence_continues_after_the_streams_last_entry(redis_client: redis.Redis) -> None:
    redis_client.xadd(keys.frames_stream("gate"), {"seq": 41})
    frames = publisher(redis_client, IngestMetrics())
    frames.sync_seq()
    assert frames.take_seq() == 42


def test_a_poisoned_seq_restarts_the_sequence_counted_and_logged(redis_client: redis.Redis, caplog) -> None:
    """Before: one frame of seq 2^63-1 made every later frame fail validation (seq overflow), and
    the camera stayed dead until the stream was deleted by hand."""
    redis_client.xadd(keys.frames_stream("gate"), {"seq": 2**63 - 1})
    metrics = IngestMetrics()
    frames = publisher(redis_client, metrics)
    frames.sync_seq()
    assert frames.take_seq() == 0
    assert metrics.registry.get_sample_value("vigil_ingest_seq_resets_total", {"camera": "gate"}) == 1
    assert "restarting the sequence at 0" in caplog.text
