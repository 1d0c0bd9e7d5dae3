"""The rules engine on synthetic detections: thresholds, k-of-n, zones, cooldown, lifecycle, replay."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

import pytest

from alerts.events import event_id, normalise_box
from alerts.rules import RuleEngine, StormLimit
from alerts.zones import Zone
from shared.config import AlertRuleConfig
from shared.schemas import AlertEvent, Detection, Detections

FRAME_NS = 200_000_000  # 5 fps
LEFT_BOX = (100.0, 200.0, 200.0, 400.0)  # bottom centre (0.23, 0.83): left half
RIGHT_BOX = (440.0, 200.0, 540.0, 400.0)  # bottom centre (0.77, 0.83): right half
LEFT_HALF = Zone.from_config("left", [(0, 0), (0.5, 0), (0.5, 1), (0, 1)])


def det(
    track: int | None = 7,
    *,
    score: float = 0.9,
    box=LEFT_BOX,
    label: str = "pistol",
    verify_score: float | None = None,
) -> Detection:
    return Detection(label=label, class_id=0, score=score, box=box, track_id=track, verify_score=verify_score)


def frame(seq: int, *objects: Detection, camera: str = "cam1", ts_ns: int | None = None) -> Detections:
    return Detections(
        camera=camera,
        seq=seq,
        ts_ns=seq * FRAME_NS if ts_ns is None else ts_ns,
        width=640,
        height=480,
        model="test",
        objects=objects,
        timings_ms={},
    )


def rule(**overrides) -> AlertRuleConfig:
    fields = dict(
        name="gun", labels=("pistol",), min_score=0.5, persistence_k=3, persistence_n=5,
        cooldown_s=30.0, end_after_s=1.0,
    )  # fmt: skip
    return AlertRuleConfig(**(fields | overrides))


class Recorder:
    """Collects on_suppressed calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, rule: str, label: str, reason: str) -> None:
        self.calls.append((rule, label, reason))

    @property
    def reasons(self) -> Counter:
        return Counter(reason for _, _, reason in self.calls)


def engine(*rules: AlertRuleConfig, zones=None, recorder: Recorder | None = None) -> RuleEngine:
    return RuleEngine(rules or (rule(),), zones or {}, on_suppressed=recorder)


def run(eng: RuleEngine, messages: Iterable[Detections]) -> list[AlertEvent]:
    return [event for message in messages for event in eng.process(message)]


def pattern_frames(pattern: str, **kwargs) -> list[Detections]:
    """'X' = the track qualifies in that frame, '.' = the frame has no objects."""
    return [frame(seq, *([det(**kwargs)] if c == "X" else [])) for seq, c in enumerate(pattern)]


def started_seqs(events: list[AlertEvent]) -> list[int]:
    return [e.seq for e in events if e.kind == "started"]


# --- score and persistence -------------------------------------------------------------------------------


def test_below_min_score_never_counts() -> None:
    recorder = Recorder()
    events = run(engine(recorder=recorder), pattern_frames("XXXXXX", score=0.49))
    assert events == []
    assert recorder.calls == [("gun", "pistol", "score")] * 6


def test_min_score_itself_counts() -> None:
    assert started_seqs(run(engine(), pattern_frames("XXX", score=0.5))) == [2]


@pytest.mark.parametrize(
    ("pattern", "fires_at"),
    [
        ("XXX", [2]),  # the k-th qualifying frame, not before
        ("XX", []),
        ("X.X.X", [4]),  # k spread over exactly n frames
        ("X..X.X", []),  # k spread over n + 1 frames: never 3 in any 5
        ("X..X..X..X..X", []),
        ("X..XX", [4]),  # frames 0, 3, 4: all within the last 5
        ("X...XX", []),  # frame 0 has left the window of frame 5
        ("X...XX.X", [7]),  # frames 4, 5, 7 of the window 3..7
    ],
)
def test_k_of_n(pattern: str, fires_at: list[int]) -> None:
    assert started_seqs(run(engine(), pattern_frames(pattern))) == fires_at


def test_first_seen_is_the_first_qualifying_frame_in_the_window() -> None:
    events = run(engine(), pattern_frames("X...XXX"))
    (started,) = events
    assert started.seq == 6
    assert started.first_seen_ns == 4 * FRAME_NS  # frame 0 has left the window
    assert started.ts_ns == 6 * FRAME_NS


def test_started_event_carries_the_current_object() -> None:
    messages = [*pattern_frames("XX"), frame(2, det(score=0.8, box=(10.0, 20.0, 700.0, 500.0)))]
    (started,) = run(engine(), messages)
    assert started.kind == "started"
    assert (started.rule, started.severity, started.camera, started.label) == (
        "gun",
        "critical",
        "cam1",
        "pistol",
    )
    assert started.score == 0.8 and started.box == (10.0, 20.0, 700.0, 500.0)
    assert started.box_norm == pytest.approx((10 / 640, 20 / 480, 1.0, 1.0))  # clipped to the frame
    assert started.track_id == 7
    assert started.first_seen_ns == 0 and started.seq == 2
    assert started.event_id == event_id("cam1", 7, "gun", 2, "started")


# --- zones -----------------------------------------------------------------------------------------------


def test_bottom_center_zone_in_and_out() -> None:
    zones = {"cam1": {"left": LEFT_HALF}}
    recorder = Recorder()
    eng = engine(rule(zones=("left",)), zones=zones, recorder=recorder)
    assert run(eng, pattern_frames("XXX", box=RIGHT_BOX)) == []
    assert recorder.reasons == Counter(zone=3)
    # Straddling the border, but the bottom centre (0.47, 0.83) is in the left half.
    straddling = (200.0, 100.0, 400.0, 400.0)
    assert started_seqs(run(eng, [frame(seq, det(box=straddling)) for seq in range(3, 6)])) == [5]


@pytest.mark.parametrize(("min_overlap", "fires"), [(0.3, True), (0.5, False)])
def test_overlap_zone_mode(min_overlap: float, fires: bool) -> None:
    box = (256.0, 0.0, 416.0, 480.0)  # x 0.4..0.65: 40% of the box in the left half
    eng = engine(
        rule(zones=("left",), zone_mode="overlap", min_overlap=min_overlap),
        zones={"cam1": {"left": LEFT_HALF}},
    )
    assert bool(run(eng, pattern_frames("XXX", box=box))) is fires


def test_any_of_the_rules_zones_counts() -> None:
    right = Zone.from_config("right", [(0.5, 0), (1, 0), (1, 1), (0.5, 1)])
    eng = engine(rule(zones=("left", "right")), zones={"cam1": {"right": right}})
    assert started_seqs(run(eng, pattern_frames("XXX", box=RIGHT_BOX))) == [2]


def test_a_zone_rule_skips_cameras_without_its_zones() -> None:
    recorder = Recorder()
    zoned = rule(zones=("left",))
    eng = engine(zoned, zones={"cam1": {"left": LEFT_HALF}, "cam2": {}}, recorder=recorder)
    messages = [frame(seq, det(), camera="cam2") for seq in range(5)]
    assert run(eng, messages) == []
    assert recorder.calls == []  # not evaluated at all
    assert eng.zones_for(zoned, "cam2") is None
    assert eng.zones_for(zoned, "cam1") == (LEFT_HALF,)


def test_rule_cameras_filter() -> None:
    eng = engine(rule(cameras=("cam2",)))
    assert run(eng, pattern_frames("XXXX")) == []
    assert started_seqs(run(eng, [frame(seq, det(), camera="cam2") for seq in range(3)])) == [2]


# --- lifecycle and cooldown ------------------------------------------------------------------------------


def test_lost_track_ends_after_end_after_s_of_frame_time() -> None:
    events = run(engine(), pattern_frames("XXX" + "." * 10))
    started, ended = events
    # Last qualifying frame 2 (0.4 s); end_after 1.0 s → ended at the frame of 1.4 s, seq 7.
    assert (ended.kind, ended.seq, ended.ts_ns) == ("ended", 7, 7 * FRAME_NS)
    assert ended.event_id == event_id("cam1", 7, "gun", 2, "ended")
    assert ended.first_seen_ns == started.first_seen_ns
    assert (ended.box, ended.score, ended.track_id) == (started.box, started.score, 7)


def test_ended_carries_the_last_qualifying_box() -> None:
    last = det(score=0.7, box=(110.0, 210.0, 210.0, 410.0))
    messages = [*pattern_frames("XXXX"), frame(4, last), *(frame(seq) for seq in range(5, 12))]
    _, ended = run(engine(), messages)
    assert (ended.box, ended.score, ended.seq) == (last.box, 0.7, 9)
    assert ended.box_norm == normalise_box(last.box, 640, 480)


def test_ending_uses_frame_time_not_frame_count() -> None:
    # One frame every 2 s: the first frame without the track is already past end_after_s.
    messages = [frame(seq, det(), ts_ns=seq * 2_000_000_000) for seq in range(3)]
    messages.append(frame(3, ts_ns=6_000_000_000))
    assert [e.kind for e in run(engine(), messages)] == ["started", "ended"]


def test_leaving_the_zone_ends_the_alert() -> None:
    recorder = Recorder()
    eng = engine(rule(zones=("left",)), zones={"cam1": {"left": LEFT_HALF}}, recorder=recorder)
    inside = [frame(seq, det(box=LEFT_BOX)) for seq in range(3)]
    outside = [frame(seq, det(box=RIGHT_BOX)) for seq in range(3, 12)]
    started, ended = run(eng, inside + outside)
    assert (started.seq, ended.seq) == (2, 7)
    assert ended.box == LEFT_BOX
    assert recorder.reasons["zone"] == 9


def test_open_alert_stays_open_while_qualifying() -> None:
    events = run(engine(), pattern_frames("XXX" + "X...X...X...X"))
    assert [e.kind for e in events] == ["started"]


def test_cooldown_suppresses_a_second_start() -> None:
    recorder = Recorder()
    eng = engine(rule(cooldown_s=5.0), recorder=recorder)
    # Started at 0.4 s, ended at 1.4 s, back at 2.0 s: within 5 s of the start.
    events = run(eng, pattern_frames("XXX" + "." * 7 + "XXXX"))
    assert [e.kind for e in events] == ["started", "ended"]
    assert recorder.reasons == Counter(persistence=4, cooldown=2)
    # Still qualifying when the cooldown has passed (5.4 s = frame 27): a new alert, a new id.
    later = run(eng, [frame(seq, det()) for seq in range(14, 30)])
    assert started_seqs(later) == [27]
    assert later[0].event_id == event_id("cam1", 7, "gun", 27, "started") != events[0].event_id


def test_zero_cooldown_restarts_after_the_end() -> None:
    events = run(engine(rule(cooldown_s=0.0)), pattern_frames("XXX" + "." * 7 + "XXX"))
    assert [(e.kind, e.seq) for e in events] == [("started", 2), ("ended", 7), ("started", 12)]


# --- independence ----------------------------------------------------------------------------------------


def test_cameras_are_independent() -> None:
    eng = engine(rule(persistence_k=3, persistence_n=3))
    messages = []
    for seq in range(3):
        messages.append(frame(seq, det(), camera="cam1"))
        messages += [frame(10 * seq + i, camera="cam2") for i in range(4)]  # cam2's frames don't age cam1
    events = run(eng, messages)
    assert [(e.camera, e.seq) for e in events] == [("cam1", 2)]
    # The same track id on cam2 starts from zero.
    assert run(eng, [frame(seq, det(), camera="cam2") for seq in range(40, 42)]) == []


def test_rules_are_independent() -> None:
    slow = rule(name="gun", persistence_k=3)
    fast = rule(name="gun-fast", persistence_k=1, persistence_n=1, min_score=0.8, severity="warning")
    recorder = Recorder()
    events = run(engine(slow, fast, recorder=recorder), pattern_frames("XXX", score=0.85))
    assert [(e.rule, e.seq, e.severity) for e in events] == [
        ("gun-fast", 0, "warning"),
        ("gun", 2, "critical"),
    ]
    assert len({e.event_id for e in events}) == 2
    assert recorder.calls == [("gun", "pistol", "persistence")] * 2


def test_tracks_are_independent() -> None:
    messages = [frame(seq, det(7), *([det(8)] if seq >= 2 else [])) for seq in range(5)]
    events = run(engine(), messages)
    assert [(e.track_id, e.seq) for e in events] == [(7, 2), (8, 4)]


def test_tentative_tracks_are_ignored() -> None:
    recorder = Recorder()
    eng = engine(recorder=recorder)
    assert run(eng, [frame(seq, det(None), det(None, score=0.1)) for seq in range(10)]) == []
    assert recorder.calls == []
    assert eng.tracked == 0


# --- suppression reasons ---------------------------------------------------------------------------------


def test_suppression_reasons_once_per_object_and_rule() -> None:
    recorder = Recorder()
    eng = engine(rule(zones=("left",)), zones={"cam1": {"left": LEFT_HALF}}, recorder=recorder)
    objects = (
        det(1),  # qualifies: persistence, persistence, then starts
        det(2, score=0.2),  # score (even though also in zone)
        det(3, box=RIGHT_BOX),  # zone
        det(4, score=0.2, box=RIGHT_BOX),  # score is checked first
        det(5, label="person", score=0.1),  # not watched: never reported
        det(None),  # tentative: never reported
    )
    events = run(eng, [frame(seq, *objects) for seq in range(4)])
    assert [(e.track_id, e.seq) for e in events] == [(1, 2)]
    assert Counter(recorder.calls) == Counter({
        ("gun", "pistol", "score"): 8,
        ("gun", "pistol", "zone"): 4,
        ("gun", "pistol", "persistence"): 2,
    })  # fmt: skip


def test_a_verify_rule_counts_only_verified_sightings() -> None:
    """Unverified (None) or verified below verify_min_score: suppressed as "verify", not counted."""
    recorder = Recorder()
    verify = rule(verify=True, verify_min_score=0.6)
    frames = [
        frame(seq, det(1, verify_score=None), det(2, verify_score=0.59), det(3, verify_score=0.6))
        for seq in range(3)
    ]
    events = run(engine(verify, recorder=recorder), frames)
    assert [(e.track_id, e.seq) for e in events] == [(3, 2)]
    assert recorder.reasons == Counter({"verify": 6, "persistence": 2})


def test_without_verify_the_verify_score_is_not_looked_at() -> None:
    frames = pattern_frames("XXX", verify_score=0.01)
    assert started_seqs(run(engine(), frames)) == [2]
    assert started_seqs(run(engine(), pattern_frames("XXX"))) == [2], "nor needed"


def test_score_and_zone_are_checked_before_verification() -> None:
    recorder = Recorder()
    eng = engine(rule(verify=True, zones=("left",)), zones={"cam1": {"left": LEFT_HALF}}, recorder=recorder)
    run(eng, [frame(0, det(1, score=0.2), det(2, box=RIGHT_BOX), det(3))])
    assert recorder.reasons == Counter({"score": 1, "zone": 1, "verify": 1})


# --- sweep, memory, drop_camera --------------------------------------------------------------------------


def test_sweep_ends_alerts_of_a_silent_camera_only() -> None:
    eng = engine()
    run(eng, [frame(seq, det(), camera="cam1") for seq in range(3)])  # cam1 last frame at 0.4 s
    run(eng, [frame(seq, det(), camera="cam2") for seq in range(10)])  # cam2 last frame at 1.8 s
    assert eng.sweep(1_300_000_000) == []  # cam1 silent 0.9 s < end_after 1 s
    (ended,) = eng.sweep(2_000_000_000)  # cam1 silent 1.6 s; cam2 0.2 s
    assert (ended.kind, ended.camera, ended.ts_ns, ended.seq) == ("ended", "cam1", 2_000_000_000, 2)
    assert ended.event_id == event_id("cam1", 7, "gun", 2, "ended")
    assert eng.sweep(2_500_000_000) == []  # ended once only; cam2 silent 0.7 s
    # The ended alert is not ended again when the camera comes back without the track.
    assert run(eng, [frame(20, camera="cam1")]) == []


def test_state_is_forgotten_once_it_cannot_matter() -> None:
    eng = engine(rule(cooldown_s=2.0))
    run(eng, pattern_frames("XXX"))
    assert eng.tracked == 1
    # Ended at 1.4 s; cooldown ends at 2.4 s (frame 12); the window emptied long before.
    run(eng, [frame(seq) for seq in range(3, 12)])
    assert eng.tracked == 1
    run(eng, [frame(12)])
    assert eng.tracked == 0
    # A track that never fired is forgotten when its hits leave the window.
    run(eng, [frame(13, det(9)), *(frame(seq) for seq in range(14, 18))])
    assert eng.tracked == 1
    run(eng, [frame(18)])
    assert eng.tracked == 0


def test_sweep_forgets_tracks_of_silent_cameras() -> None:
    eng = engine(rule(cooldown_s=10.0))
    run(eng, pattern_frames("XXX"))
    eng.sweep(1_500_000_000)  # ends the alert; cooldown still holds the state
    assert eng.tracked == 1
    eng.sweep(10_400_000_000)  # silent for max(end_after, cooldown) = 10 s
    assert eng.tracked == 0


def test_drop_camera_forgets_its_state() -> None:
    eng = engine()
    run(eng, pattern_frames("XXX"))
    run(eng, [frame(seq, det(), camera="cam2") for seq in range(2)])
    (ended,) = eng.drop_camera("cam1")
    assert (ended.kind, ended.camera, ended.seq) == ("ended", "cam1", 2)
    assert eng.drop_camera("cam1") == []
    # Back on cam1 from scratch (no cooldown remembered): k frames again; cam2 is untouched.
    assert started_seqs(run(eng, [frame(seq, det()) for seq in range(3, 6)])) == [5]
    assert started_seqs(run(eng, [frame(2, det(), camera="cam2")])) == [2]


# --- determinism and replay ------------------------------------------------------------------------------


def random_scenario(seed: int) -> list[Detections]:
    rng = random.Random(seed)
    messages = []
    for seq in range(300):
        for camera in ("cam1", "cam2"):
            objects = []
            for track in (1, 2, 3, None):
                if rng.random() < 0.6:
                    x = rng.uniform(0, 560)
                    box = (x, rng.uniform(0, 300), x + 80, rng.uniform(300, 480))
                    objects.append(det(track, score=round(rng.uniform(0.3, 1.0), 3), box=box))
            messages.append(frame(seq, *objects, camera=camera, ts_ns=seq * FRAME_NS + rng.randrange(1000)))
    return messages


def test_same_detections_give_the_same_events_and_ids() -> None:
    rules = (
        rule(zones=("left",), cooldown_s=3.0),
        rule(name="any", persistence_k=2, persistence_n=4, cooldown_s=1.0),
    )
    zones = {"cam1": {"left": LEFT_HALF}, "cam2": {"left": LEFT_HALF}}
    messages = random_scenario(seed=1)
    first, second = Recorder(), Recorder()
    events = run(RuleEngine(rules, zones, on_suppressed=first), messages)
    again = run(RuleEngine(rules, zones, on_suppressed=second), messages)
    assert events == again
    assert first.calls == second.calls
    kinds = Counter(e.kind for e in events)
    assert kinds["started"] >= 5 and kinds["ended"] >= 5
    assert len({e.event_id for e in events}) == len(events)
    # Every ended pairs with the started before it.
    open_ids = {}
    for e in events:
        key = (e.rule, e.camera, e.track_id)
        if e.kind == "started":
            assert key not in open_ids
            open_ids[key] = e
        else:
            started = open_ids.pop(key)
            assert e.event_id == event_id(e.camera, e.track_id, e.rule, started.seq, "ended")


def test_the_same_frame_replayed_never_alerts_twice() -> None:
    recorder = Recorder()
    stale: list[str] = []
    eng = RuleEngine((rule(),), {}, on_suppressed=recorder, on_stale=stale.append)
    messages = pattern_frames("XXX")
    run(eng, messages[:2])
    (started,) = eng.process(messages[2])
    assert started.kind == "started"
    calls = len(recorder.calls)
    assert eng.process(messages[2]) == []
    assert len(recorder.calls) == calls  # a replay is not evaluated at all
    assert run(eng, messages) == []  # older frames, out of order
    assert stale == ["cam1"] * 4
    assert run(eng, [frame(3, det())]) == []  # the alert is still the same open one


def test_replays_do_not_count_towards_persistence() -> None:
    message = frame(0, det())
    assert run(engine(), [message] * 5) == []


def test_a_reset_sequence_with_later_time_is_new() -> None:
    eng = engine()
    run(eng, [frame(seq, det()) for seq in range(100, 102)])
    # The stream was recreated: seq starts again, but time went on.
    assert started_seqs(run(eng, [frame(0, det(), ts_ns=101 * FRAME_NS + 1)])) == [0]


def test_event_ids_are_stable_and_distinct() -> None:
    base = event_id("cam1", 7, "gun", 2, "started")
    assert len(base) == 20 and int(base, 16) >= 0
    assert base == event_id("cam1", 7, "gun", 2, "started")
    others = [
        event_id("cam2", 7, "gun", 2, "started"),
        event_id("cam1", 8, "gun", 2, "started"),
        event_id("cam1", 7, "gun-2", 2, "started"),
        event_id("cam1", 7, "gun", 3, "started"),
        event_id("cam1", 7, "gun", 2, "ended"),
        event_id("cam1", None, "gun", 2, "started"),
    ]
    assert len({base, *others}) == 7


def test_an_alert_storm_is_capped_per_camera_and_window_keeping_the_best_first() -> None:
    """Three entries with 1000 tracked pistols each: at most 20 'started' per 10 s, the highest
    scores first; the rest suppressed as 'storm' until the window moves on."""
    recorder = Recorder()
    eng = RuleEngine((rule(persistence_k=1, persistence_n=1),), {}, on_suppressed=recorder,
                     storm=StormLimit(max_started=20, window_s=10.0))  # fmt: skip
    crowd = [det(track, score=0.5 + track / 2000) for track in range(1, 1001)]
    started = run(eng, [frame(seq, *crowd) for seq in range(3)])
    assert len(started) == 20
    assert {e.track_id for e in started} == set(range(981, 1001)), "the highest scores"
    assert recorder.reasons["storm"] == 3 * 980, "the others, in each of the three frames"
    later = run(eng, [frame(100, *crowd, ts_ns=10 * 10**9 + 2 * FRAME_NS)])  # the window has moved on
    assert len(later) == 20 and {e.kind for e in later} == {"started"}


def test_the_storm_cap_keeps_the_most_severe_rule() -> None:
    info = rule(name="seen", severity="info", persistence_k=1, persistence_n=1)
    critical = rule(name="gun", severity="critical", persistence_k=1, persistence_n=1)
    eng = RuleEngine((info, critical), {}, storm=StormLimit(max_started=1, window_s=10.0))
    (event,) = run(eng, [frame(0, det(1))])
    assert event.rule == "gun"


def test_a_take_over_in_the_middle_of_an_alert_keeps_its_ids() -> None:
    """Re-evaluating from a warm-up that starts after an alert fired used to fire it again at a
    later frame, under new ids. Seeded with the recorded events, the new owner keeps the open alert,
    ends it under the original pair of ids, and does not start it again."""
    track = [frame(seq, det()) for seq in range(8)] + [frame(seq) for seq in range(8, 18)]
    first = engine()
    events = run(first, track)
    assert [e.kind for e in events] == ["started", "ended"]
    started, ended = events

    only_started = engine()  # the crash came while the alert was open: only 'started' was recorded
    only_started.restore("cam1", [started])
    replayed = run(only_started, track[5:])  # the warm-up begins after the alert fired
    assert [(e.kind, e.event_id) for e in replayed] == [("ended", ended.event_id)]

    both = engine()  # the alert had ended too: nothing new, and the track keeps its cooldown
    both.restore("cam1", [started, ended])
    assert run(both, track[5:] + [frame(seq, det()) for seq in range(18, 21)]) == []
