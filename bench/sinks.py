"""Alert sink delivery on loopback: latency from an event recorded in ``vigil:alerts`` to its
arrival at the receiver, and throughput through a backlog, for a webhook and an MQTT sink.

A real :class:`alerts.sinks.service.SinkService` delivers to a real HTTP receiver
(tests/support/webhook_receiver.py) and to a real Mosquitto broker (tests/support/mosquitto.py),
where a QoS 1 subscriber takes the events; the broker runs with ``set_tcp_nodelay true`` and
with mosquitto's default (false), which costs ~40 ms an event (Nagle and delayed ACKs). Redis is
``--redis`` (database 13 by default; the script flushes it).

* latency: ``--events`` events recorded ``--interval-ms`` apart while the sink runs; per event, the
  receiver's clock at arrival minus the clock just before the record (one host, one clock).
* throughput: ``--backlog`` events recorded before the sink starts (``start_from: oldest``); the
  time from its start to the last arrival, as events a second (delivery is one event at a time,
  in order, each acknowledged before the next).

    python bench/sinks.py [--events 200] [--interval-ms 20] [--backlog 2000]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, as the tests run it

import paho.mqtt.client as mqtt

from alerts.history import AlertHistory
from alerts.sinks.service import SinkService
from shared.config import MqttSinkConfig, RedisConfig, SinkConfig, SinksConfig, WebhookSinkConfig
from shared.redis import connect
from shared.schemas import AlertEvent
from tests.support.messages import pistol_event
from tests.support.mosquitto import Mosquitto
from tests.support.services import running, wait_for
from tests.support.webhook_receiver import Receiver, Script


def make_event(n: int, run: str) -> AlertEvent:
    now = time.time_ns()
    return pistol_event(n, event_id=f"{run}-{n:06d}", first_seen_ns=now, ts_ns=now)


class MqttArrivals:
    """event id → arrival time, from a QoS 1 subscription to the event topics."""

    def __init__(self, port: int) -> None:
        self.arrived: dict[str, float] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.arrived.setdefault(
            json.loads(m.payload)["event_id"], time.time()
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        time.sleep(0.3)

    @staticmethod
    def _on_connect(client: mqtt.Client, *_: object) -> None:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # its PUBACKs: no Nagle
        client.subscribe("vigil/+/+/started", qos=1)


def measure(
    client,
    target: SinkConfig,
    arrivals: Callable[[], dict[str, float]],
    *,
    run: str,
    events: int,
    interval_s: float,
    backlog: int,
) -> dict[str, float]:
    history = AlertHistory(client, maxlen=1_000_000)
    config = SinksConfig(instance="bench", metrics_port=None, lease_ttl_s=2.0, targets=(target,))
    for n in range(backlog):  # throughput: a backlog waiting before the sink starts
        history.record(make_event(n, f"{run}-backlog"))
    started = time.time()
    with running(SinkService(config, client=client)):
        assert wait_for(lambda: sum(k.startswith(f"{run}-backlog") for k in arrivals()) == backlog, 600)
        drained = max(t for k, t in arrivals().items() if k.startswith(f"{run}-backlog")) - started
        recorded: dict[str, float] = {}
        for n in range(events):  # latency: events one by one, the sink caught up
            event = make_event(n, f"{run}-paced")
            recorded[event.event_id] = time.time()
            history.record(event)
            time.sleep(interval_s)
        assert wait_for(lambda: all(k in arrivals() for k in recorded), 60)
    got = arrivals()
    latencies_ms = sorted(1000 * (got[k] - t) for k, t in recorded.items())
    return {
        "p50_ms": statistics.median(latencies_ms),
        "p95_ms": latencies_ms[int(0.95 * len(latencies_ms)) - 1],
        "max_ms": latencies_ms[-1],
        "backlog_events_per_s": backlog / drained,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    client = connect(RedisConfig(url=args.redis))
    client.flushdb()
    settings = {"events": args.events, "interval_s": args.interval_ms / 1000, "backlog": args.backlog}

    receiver = Receiver(Script())
    hook = WebhookSinkConfig(
        name="hook", type="webhook", url=receiver.url, secret="bench-secret", start_from="oldest"
    )

    def webhook_arrivals() -> dict[str, float]:
        return {r.key: r.received_s for r in list(receiver.requests)}

    results = {"webhook": measure(client, hook, webhook_arrivals, run="webhook", **settings)}
    receiver.close()

    for nodelay in (True, False):
        with tempfile.TemporaryDirectory() as folder:
            broker = Mosquitto(Path(folder), tcp_nodelay=nodelay).start()
            subscriber = MqttArrivals(broker.port)
            broker_sink = MqttSinkConfig(
                name="mqtt",
                type="mqtt",
                host="127.0.0.1",
                port=broker.port,
                discovery=False,
                snapshots=False,
                start_from="oldest",
            )
            name = "mqtt" if nodelay else "mqtt (broker without set_tcp_nodelay)"
            results[name] = measure(
                client, broker_sink, lambda s=subscriber: dict(s.arrived), run=f"mqtt-{nodelay}", **settings
            )
            subscriber.client.loop_stop()
            broker.stop()
    client.flushdb()
    print(f"{args.events} events {args.interval_ms:g} ms apart; backlog {args.backlog}")
    for name, figures in results.items():
        print(
            f"{name}: latency p50 {figures['p50_ms']:.1f} ms  p95 {figures['p95_ms']:.1f} ms  "
            f"max {figures['max_ms']:.1f} ms;  backlog {figures['backlog_events_per_s']:.0f} events/s"
        )


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
