import socket
import time
import urllib.request

import pytest
import redis
from prometheus_client import CollectorRegistry, Counter

from shared import keys
from shared.config import AlertsConfig, DetectorConfig, IngestConfig
from shared.metrics import MetricsServer, serve_metrics
from shared.registry import CameraStatus, read_statuses, write_status


def test_registry_round_trip(redis_client: redis.Redis) -> None:
    status = CameraStatus(
        camera="lobby", state="streaming", owner="host:1", updated_ns=time.time_ns(),
        last_frame_ns=5, fps=4.9, width=640, height=360, frames_published=10, reconnects=1,
        last_error="camera lobby: cannot connect",
    )  # fmt: skip
    write_status(redis_client, status)
    write_status(redis_client, CameraStatus(camera="door", state="backoff", owner="h", updated_ns=1))
    assert [s.camera for s in read_statuses(redis_client)] == ["door", "lobby"]
    assert read_statuses(redis_client)[1] == status


def test_registry_prunes_vanished_entries(redis_client: redis.Redis) -> None:
    write_status(redis_client, CameraStatus(camera="gone", state="ended", owner="h", updated_ns=1))
    redis_client.delete(keys.camera_key("gone"))
    assert read_statuses(redis_client) == []
    assert redis_client.smembers(keys.CAMERAS) == set()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_server_serves_metrics_and_health() -> None:
    registry = CollectorRegistry()
    Counter("vigil_test_things", "Things", registry=registry).inc(3)
    ready = {"value": False}
    note: dict[str, str | None] = {"value": None}
    server = MetricsServer(registry, host="127.0.0.1", port=0, ready=lambda: ready["value"],
                           note=lambda: note["value"])  # fmt: skip
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = get(f"{base}/metrics")
        assert status == 200
        assert b"vigil_test_things_total 3.0" in body
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/readyz")[0] == 503
        ready["value"] = True
        assert get(f"{base}/readyz") == (200, b"ready\n")
        note["value"] = "engine fallback to torch-fp32"
        assert get(f"{base}/readyz") == (200, b"ready\nengine fallback to torch-fp32\n")
        assert get(f"{base}/nope")[0] == 404
    finally:
        server.close()


def accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


@pytest.mark.parametrize("section", [IngestConfig, DetectorConfig, AlertsConfig])
def test_metrics_and_health_listen_on_loopback_unless_configured(section: type[IngestConfig]) -> None:
    """127.0.0.1 by default: 127.0.0.2 (loopback too, but another address) is refused, where a socket
    on every interface (0.0.0.0, what docker-compose sets for Prometheus) accepts it."""
    assert section().metrics_host == "127.0.0.1"
    assert MetricsServer.__init__.__kwdefaults__["host"] == "127.0.0.1"
    for host, other_address_accepted in (("127.0.0.1", False), ("0.0.0.0", True)):
        config = section(metrics_port=0, metrics_host=host)
        server = serve_metrics(config, CollectorRegistry(), ready=lambda: True)
        assert server is not None
        try:
            assert server._server.server_address[0] == host
            assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
            assert accepts("127.0.0.2", server.port) is other_address_accepted
        finally:
            server.close()
