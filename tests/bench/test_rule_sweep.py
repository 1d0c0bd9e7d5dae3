"""``bench/rule_sweep.py``: a replay of cached detections through the alerts service's rules engine
gives the service's ``started`` events, the cache round-trips, the sweep puts the settings that trade
alerted appearances against false alerts first, and test-only clips are refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from alerts.rules import RuleEngine, replay
from alerts.service import AlertService
from alerts.zones import zones_by_camera
from bench.alert_quality import Appearance, Run, Truth
from bench.rule_sweep import (
    TUNING,
    Played,
    front_lines,
    load_run,
    main,
    save_run,
    started_events,
    sweep,
    table,
)
from shared import keys
from shared.config import AlertRuleConfig, CameraConfig
from shared.schemas import AlertEvent, Detections
from tests.alerts.conftest import alerts_config, cameras, endpoint, message, push
from tests.support.services import running, wait_for

RULE = AlertRuleConfig(name="gun", labels=("pistol",), min_score=0.6, persistence_k=3, persistence_n=5,
                       end_after_s=1.0, cooldown_s=0.5)  # fmt: skip
CAMERA = CameraConfig(id="cam", url="clip.mp4")


def clip_of(messages: list[Detections], truth: Truth | None = None, name: str = "cam") -> Played:
    run = Run([], {m.seq: 100 * m.seq for m in messages}, messages)
    return Played(name, CAMERA, truth or Truth(640, 480, 10, {}, []), 1.0, run)


def hits_at(*seqs: int) -> list[Detections]:
    """Frames 0-9 of ``cam`` 100 ms apart; track 1 (score 0.9) in ``seqs``, nothing in the others."""
    return [message("cam", seq, *([(1, 0.9)] if seq in seqs else []), ts_ns=10**9 + seq * 10**8)
            for seq in range(10)]  # fmt: skip


def test_three_of_five_alerts_on_the_third_hit_and_not_on_two() -> None:
    assert started_events(RULE, clip_of(hits_at(1, 4))) == []
    (event, latency_s), = started_events(RULE, clip_of(hits_at(1, 3, 4)))
    assert (event.kind, event.track_id, event.seq, latency_s) == ("started", 1, 4, 0.0)
    assert started_events(RULE, clip_of(hits_at(0, 1, 5))) == [], "hits 0 and 1 left the window at 5"


def live_sequence(client: redis.Redis) -> list[Detections]:
    """Pushed at 10 fps as a detector would: track 1 alerts, goes silent for 1.4 s (frames the motion
    gate skipped: the service ends it on its clock and forgets it) and alerts again; track 2 scores
    under min_score, track 3 is seen in 2 of 5 frames."""
    sent = []
    before = [(seq, [(1, 0.9), (2, 0.5)]) for seq in range(6)]
    after = [(seq, [(1, 0.9), (3, 0.8)] if seq in (20, 23) else [(1, 0.9)]) for seq in range(20, 25)]
    for seq, objects in before + after:
        if seq == 20:
            time.sleep(1.4)
        sent.append(message("cam", seq, *objects))
        push(client, sent[-1])
        time.sleep(0.1)
    return sent


def test_a_replay_gives_the_started_events_of_the_alerts_service_fed_over_redis(
    redis_client: redis.Redis,
) -> None:
    bind, _ = endpoint()
    config = alerts_config(bind, rules=(RULE,))
    service = AlertService(config, cameras("cam"), client=redis_client)
    with running(service):
        assert wait_for(lambda: service.ready, 10)
        sent = live_sequence(redis_client)
        last = redis_client.xrevrange(keys.detections_stream("cam"), count=1)[0][0]
        assert wait_for(lambda: redis_client.get(keys.alerts_cursor_key("cam")) == last, 10)
    recorded = [AlertEvent.decode(fields) for _id, fields in redis_client.xrange(keys.ALERTS)]
    live = [(e.event_id, e.track_id, e.seq) for e in recorded if e.kind == "started"]
    engine = RuleEngine.from_config(config, zones_by_camera(cameras("cam")))
    replayed = [(e.event_id, e.track_id, e.seq) for e in replay(engine, sent) if e.kind == "started"]
    assert replayed == live
    assert [(track, seq) for _id, track, seq in live] == [(1, 2), (1, 22)]
    unswept = RuleEngine.from_config(config, zones_by_camera(cameras("cam")))
    without_sweeps = [e.seq for m in sent for e in unswept.process(m) if e.kind == "started"]
    assert without_sweeps == [2], "without the service's sweeps in the silence, track 1 stays one alert"


def test_the_cached_play_round_trips_as_json_under_its_key(tmp_path: Path) -> None:
    messages = hits_at(1, 3, 4)
    events = started_events(RULE, clip_of(messages))
    run = Run([(event, 0.25) for event, _latency in events], {m.seq: 100 * m.seq for m in messages}, messages)
    path = tmp_path / "cam.json"
    save_run(path, {"clip": "cam", "engine": "torch-fp32"}, run)
    assert load_run(path, {"clip": "cam", "engine": "torch-fp32"}) == run
    assert load_run(path, {"clip": "cam", "engine": "openvino-fp32"}) is None
    assert path.read_text().startswith("{")


@pytest.mark.parametrize("clips", ["vtest", "sample,one-by-one-2"])
def test_test_only_clips_are_refused(clips: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--clips", clips])
    assert exited.value.code == 2
    assert "test-only" in capsys.readouterr().err


def test_the_tuning_clips_are_the_gun_clips_and_the_tuning_half_of_one_by_one() -> None:
    assert TUNING == ("sample", "small", "one-by-one-1")


def test_the_sweep_puts_the_front_of_alerted_against_false_alerts_first() -> None:
    """Track 1 is a pistol in 2 frames of the gun clip, and a false box in 2 frames of the no-gun clip:
    1 of 3 alerts on both, 3 of 5 on neither, 2 of 5 on both but later than 1 of 3 (dominated)."""
    pistol = Truth(640, 480, 10, {seq: [(0.0, 100.0, 40.0, 160.0)] for seq in range(10)}, [Appearance(0, 9)])
    runs = [clip_of(hits_at(1, 3), pistol), clip_of(hits_at(2, 5), None, "no-gun")]
    rules = [RULE.model_copy(update={"persistence_k": k}) for k in (2, 3, 1)]
    rows = sweep(rules, RULE, runs)
    assert [(r.rule.persistence_k, r.front, r.combined.alerted, r.combined.false_alerts) for r in rows] == [
        (1, True, 1, 1), (3, True, 0, 0), (2, False, 1, 1)
    ]
    first = table(rows, ["cam", "no-gun"])[2]
    assert first.startswith("| front | 0.60 | 1 of 5 |")
    assert "| – | – | – | 1 (3600/h) |" in first, "no appearances on the no-gun clip, 1 false alert in 1 s"
    assert [line.split(" (")[0] for line in front_lines(rows)] == ["front: 1/1", "front: 0/1"]
