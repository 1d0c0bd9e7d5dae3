"""`vigil keys` and CURVE on real sockets: keys made by the command, a real AlertPublisher, real
AlertSubscribers (what `vigil subscribe --client-key/--server-key` builds from those files).

An authorized subscriber receives events; one that was never authorized receives nothing; one that
is revoked while connected receives nothing sent after the publisher noticed, while the others get
back in. The last test does the same through a running AlertService and Redis."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerts.events import alert_event
from alerts.keys import KeyStore, KeyStoreError, public_key_of
from alerts.publisher import AUTHORIZED_CHECK_S, AlertPublisher
from alerts.service import AlertService
from alerts.subscriber import AlertSubscriber, ClientCurve
from shared.errors import ConfigError
from shared.schemas import AlertEvent, Detection
from tests.alerts.conftest import RULE, alerts_config, cameras, endpoint, message, push
from tests.support.services import running, wait_for
from vigil.cli import main


def event(number: int) -> AlertEvent:
    """A distinct event (its id names ``number``)."""
    now_ns = time.time_ns()
    detection = Detection(label="pistol", class_id=0, score=0.9, box=(1.0, 2.0, 30.0, 40.0), track_id=number)
    return alert_event("started", rule=RULE, camera="cam", detection=detection, frame_size=(640, 480),
                       first_seq=number, first_seen_ns=now_ns, ts_ns=now_ns, seq=number)  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Path:
    """A keys folder made with the command: the service's pair; "laptop" with a pair made there;
    "phone" with its own pair (`vigil keys pair`), authorized from standard input; "intruder" with a
    pair of its own that nobody authorized."""
    keys = tmp_path / "keys"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    assert main(["keys", "add", "laptop", "--dir", str(keys)]) == 0
    for name in ("phone", "intruder"):
        assert main(["keys", "pair", name, "--out", str(tmp_path / name)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO((tmp_path / "phone" / "phone.key").read_text()))
    assert main(["keys", "add", "phone", "--public-key", "-", "--dir", str(keys)]) == 0
    capsys.readouterr()
    return tmp_path


def curve_of(folder: Path, name: str) -> ClientCurve:
    """``vigil subscribe --client-key SECRET --server-key PUBLIC`` with the files the command made."""
    secret = folder / "keys" / "clients" / f"{name}.key_secret"
    if not secret.exists():
        secret = folder / name / f"{name}.key_secret"
    return ClientCurve(str(secret), str(folder / "keys" / "server.key"))


@pytest.fixture
def subscribers(folder: Path) -> Iterator[tuple[str, dict[str, AlertSubscriber]]]:
    bind, connect_to = endpoint()
    subs = {name: AlertSubscriber([connect_to], curve=curve_of(folder, name))
            for name in ("laptop", "phone", "intruder")}  # fmt: skip
    yield bind, subs
    for subscriber in subs.values():
        subscriber.close()


def received_of(
    publisher: AlertPublisher, subs: dict[str, AlertSubscriber], *, start: int, until: set[str],
    timeout_s: float,
) -> dict[str, set[str]]:  # fmt: skip
    """Send events numbered from ``start`` until each of ``until`` received one of them (or the time
    is up), then keep listening for half a second: the ids of those events each one received."""
    sent: set[str] = set()
    received: dict[str, set[str]] = {name: set() for name in subs}

    def listen(timeout: float) -> None:
        for name, subscriber in subs.items():
            received[name] |= {e.event_id for e in subscriber.events(timeout_s=timeout)}

    deadline = time.monotonic() + timeout_s
    number = start
    while time.monotonic() < deadline and not all(received[name] & sent for name in until):
        sent_event = event(number)
        assert publisher.send(sent_event)
        sent.add(sent_event.event_id)
        number += 1
        listen(0.05)
    listen(0.5)
    return {name: ids & sent for name, ids in received.items()}


def test_keys_made_by_the_command_let_in_who_is_authorized_and_no_one_else(
    folder: Path, subscribers: tuple[str, dict[str, AlertSubscriber]], capsys: pytest.CaptureFixture
) -> None:
    bind, subs = subscribers
    store = KeyStore.in_folder(folder / "keys")
    assert main(["keys", "list", "--dir", str(folder / "keys")]) == 0
    listed = capsys.readouterr().out
    assert [line.split()[0] for line in listed.splitlines()] == ["laptop", "phone"]
    assert {s.name: s.public_key for s in store.subscribers()}["phone"] in listed

    publisher = AlertPublisher(bind, send_hwm=1000, curve=store.curve_config())
    try:
        received = received_of(publisher, subs, start=0, until={"laptop", "phone"}, timeout_s=15)
        assert received["laptop"] and received["phone"], "both authorized subscribers receive"
        assert received["intruder"] == set(), "a key nobody authorized receives nothing"

        # revoke the phone while it is connected: the publisher notices and drops every connection
        assert main(["keys", "revoke", "phone", "--dir", str(folder / "keys")]) == 0
        assert publisher.check_authorized(force=True)
        assert not publisher.check_authorized(force=True), "nothing changed since"
        for subscriber in subs.values():
            list(subscriber.events(timeout_s=0.3))  # what was on its way before
        received = received_of(publisher, subs, start=1000, until={"laptop"}, timeout_s=20)
        assert received["laptop"], "the authorized subscriber is back in"
        assert received["phone"] == set(), "the revoked one receives nothing sent after the revocation"
        assert received["intruder"] == set()
    finally:
        publisher.close()


def test_vigil_subscribe_receives_with_the_files_the_command_made(folder: Path) -> None:
    """The real `vigil subscribe --client-key --server-key --json`, as a subprocess."""
    bind, connect_to = endpoint()
    publisher = AlertPublisher(bind, send_hwm=1000, curve=KeyStore.in_folder(folder / "keys").curve_config())
    command = [sys.executable, "-m", "vigil", "subscribe", "--endpoint", connect_to, "--json",
               "--client-key", str(folder / "phone" / "phone.key_secret"),
               "--server-key", str(folder / "keys" / "server.key")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    try:
        sent: set[str] = set()
        deadline = time.monotonic() + 30
        while lines.empty() and time.monotonic() < deadline and process.poll() is None:
            sent_event = event(len(sent))
            assert publisher.send(sent_event)
            sent.add(sent_event.event_id)
            time.sleep(0.1)
        line = lines.get(timeout=1)
        assert json.loads(line)["event_id"] in sent
    finally:
        process.terminate()
        process.wait(timeout=10)
        publisher.close()


def test_a_folder_that_cannot_be_read_lets_nobody_in(
    folder: Path, subscribers: tuple[str, dict[str, AlertSubscriber]]
) -> None:
    bind, subs = subscribers
    store = KeyStore.in_folder(folder / "keys")
    publisher = AlertPublisher(bind, send_hwm=1000, curve=store.curve_config())
    try:
        assert received_of(publisher, subs, start=0, until={"laptop"}, timeout_s=15)["laptop"]
        store.authorized.rename(folder / "elsewhere")  # e.g. a volume that did not mount
        assert publisher.check_authorized(force=True)
        for subscriber in subs.values():
            list(subscriber.events(timeout_s=0.3))
        received = received_of(publisher, subs, start=1000, until={"laptop"}, timeout_s=3)
        assert received == {"laptop": set(), "phone": set(), "intruder": set()}, "fails closed"
        (folder / "elsewhere").rename(store.authorized)
        assert publisher.check_authorized(force=True)
        # libzmq does not try again after a refused handshake: the laptop gets in when it reconnects
        with AlertSubscriber([bind], curve=curve_of(folder, "laptop")) as again:
            received = received_of(publisher, {"laptop": again}, start=2000, until={"laptop"}, timeout_s=15)
            assert received["laptop"]
    finally:
        publisher.close()


def test_the_command_refuses_what_would_be_wrong(folder: Path, capsys: pytest.CaptureFixture) -> None:
    keys = str(folder / "keys")
    assert main(["keys", "add", "laptop", "--dir", keys]) == 1, "a name twice"
    assert main(["keys", "add", "tablet", "--public-key", str(folder / "phone" / "phone.key"),
                 "--dir", keys]) == 1, "the same key under two names"  # fmt: skip
    assert main(["keys", "add", "../etc", "--dir", keys]) == 1
    assert main(["keys", "add", "tablet\n", "--dir", keys]) == 1
    assert main(["keys", "revoke", "tablet", "--dir", keys]) == 1
    assert main(["keys", "pair", "phone", "--out", str(folder / "phone")]) == 1, "no pair is overwritten"
    errors = capsys.readouterr().err
    assert "authorized already" in errors and "as phone" in errors and "not an authorized" in errors
    assert (folder / "keys" / "server.key_secret").stat().st_mode & 0o077 == 0, "secret: owner only"
    assert (folder / "keys" / "clients" / "laptop.key_secret").stat().st_mode & 0o077 == 0
    assert "secret-key" not in (folder / "keys" / "authorized" / "phone.key").read_text()

    server_public = (folder / "keys" / "server.key").read_text()
    assert main(["keys", "init", "--dir", keys]) == 0
    assert (folder / "keys" / "server.key").read_text() == server_public, "init keeps the pair"
    capsys.readouterr()
    assert main(["keys", "server-key", "--dir", keys]) == 0
    printed = folder / "printed.key"
    printed.write_text(capsys.readouterr().out)
    assert public_key_of(printed) == public_key_of(folder / "keys" / "server.key")
    with pytest.raises(KeyStoreError):
        KeyStore(server_secret_key_file=folder / "server.pem", authorized_keys_dir=folder / "a")


def test_the_keys_of_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Without --dir, `vigil keys` works on the files of the config's alerts.curve (as the compose
    `keys` service does, with $VIGIL_CONFIG)."""
    config = tmp_path / "vigil.yaml"
    config.write_text(f"alerts:\n  curve:\n    server_secret_key_file: {tmp_path}/k/alerts.key_secret\n"
                      f"    authorized_keys_dir: {tmp_path}/k/subscribers\n")  # fmt: skip
    assert main(["keys", "init", "-c", str(config)]) == 0
    assert main(["keys", "add", "laptop", "-c", str(config)]) == 0
    assert (tmp_path / "k" / "alerts.key").is_file() and (tmp_path / "k" / "alerts.key_secret").is_file()
    assert (tmp_path / "k" / "subscribers" / "laptop.key").is_file()
    assert (tmp_path / "k" / "clients" / "laptop.key_secret").is_file()
    (tmp_path / "none.yaml").write_text("alerts: {}\n")
    assert main(["keys", "list", "-c", str(tmp_path / "none.yaml")]) == 2
    assert "alerts.curve" in capsys.readouterr().err


def test_a_missing_server_key_is_a_config_error(tmp_path: Path) -> None:
    bind, _ = endpoint()
    curve = KeyStore.in_folder(tmp_path / "nothing").curve_config()
    with pytest.raises(ConfigError, match="vigil keys init"):
        AlertPublisher(bind, send_hwm=10, curve=curve)


def test_a_running_service_drops_a_subscriber_revoked_with_the_command(
    redis_client: redis.Redis, folder: Path
) -> None:
    bind, connect_to = endpoint()
    store = KeyStore.in_folder(folder / "keys")
    config = alerts_config(bind, curve=store.curve_config())
    service = AlertService(config, cameras("cam"), client=redis_client, forward_grace_s=0.2)
    # as `vigil subscribe` does: with the history, replayed after a reconnection, since what was
    # sent while the publisher dropped every connection (up to a few seconds) is not sent again
    laptop = AlertSubscriber([connect_to], curve=curve_of(folder, "laptop"), history=redis_client)
    phone = AlertSubscriber([connect_to], curve=curve_of(folder, "phone"), history=redis_client)

    def started_tracks(subscriber: AlertSubscriber, want: int, timeout_s: float) -> set[int | None]:
        tracks: set[int | None] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(tracks) < want:
            tracks |= {e.track_id for e in subscriber.events(timeout_s=0.2) if e.kind == "started"}
        return tracks

    def fire(track: int) -> None:
        for seq in range(3):
            push(redis_client, message("cam", 10 * track + seq, (track, 0.9)))

    try:
        with running(service):
            assert wait_for(lambda: service.ready, 10)
            time.sleep(0.5)  # the subscriptions reach the publisher
            fire(1)
            assert started_tracks(laptop, 1, 10) == {1} and started_tracks(phone, 1, 10) == {1}

            assert main(["keys", "revoke", "phone", "--dir", str(folder / "keys")]) == 0
            time.sleep(AUTHORIZED_CHECK_S + 0.5)  # the service reads the folder again
            back: set[int | None] = set()
            deadline, track = time.monotonic() + 20, 2
            while not back and time.monotonic() < deadline:  # until the laptop is back in
                fire(track)
                back, track = started_tracks(laptop, 1, 1.0), track + 1
            assert back and back <= set(range(2, track)), "the authorized subscriber is back in"
            assert started_tracks(phone, 1, 2) == set(), "revoked: nothing more"
    finally:
        laptop.close()
        phone.close()
