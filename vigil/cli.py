"""``vigil``: the command line.

Each command is two small functions side by side: ``add_<name>`` registers its sub-parser and
options, ``cmd_<name>`` parses nothing more, loads config, builds what it needs and runs it. Heavy
imports (cv2, torch, a service) happen inside the command that needs them, so ``vigil --help`` and
``vigil alerts --help`` are instant. The commands that run PyTorch re-execute themselves once with
the process settings of :mod:`vigil.runtime`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.config import EndpointConfig, VigilConfig, load_config
from shared.errors import ConfigError, StoreUnavailable, VigilError
from shared.logs import register_url_secrets, setup_logging
from vigil import __version__
from vigil.console import cameras_table, describe, parse_duration
from vigil.runtime import tune_for_torch

Commands = Any  # argparse's private _SubParsersAction
Handler = Callable[[argparse.Namespace], int]
DEFAULT_SUBSCRIBE_ENDPOINT = "tcp://127.0.0.1:5556"
WEIGHTS_HELP = "checkpoint file (.pt)"
MIN_PASSWORD_CHARS = 8


def _load(args: argparse.Namespace) -> VigilConfig:
    """The config file (or defaults), with every URL's secret registered for redaction, and logging."""
    config = load_config(args.config)
    register_url_secrets(config.redis.url)
    register_url_secrets(config.record.store_url)
    for camera in config.cameras:
        register_url_secrets(camera.url)
    setup_logging(config.logging.level, config.logging.format)
    return config


def _command(
    commands: Commands, name: str, help_text: str, handler: Handler, *, config: bool = False
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    if config:
        parser.add_argument("-c", "--config", help="YAML config file (default: $VIGIL_CONFIG, else defaults)")
    parser.set_defaults(handler=handler)
    return parser


def _service_command(
    commands: Commands,
    name: str,
    help_text: str,
    handler: Handler,
    endpoint: Callable[[VigilConfig], EndpointConfig],
) -> argparse.ArgumentParser:
    """A service's command; its ``--check`` asks the config's ``endpoint`` if the service is ready."""

    def run(args: argparse.Namespace) -> int:
        return _check_ready(endpoint(_load(args))) if args.check else handler(args)

    parser = _command(commands, name, help_text, run, config=True)
    parser.add_argument(
        "--check", action="store_true", help=f"health check: exit 0 if the local {name} service is ready"
    )
    return parser


def _check_ready(service: EndpointConfig) -> int:
    """Exit code for a container HEALTHCHECK: 0 when the local service answers /readyz."""
    if service.metrics_port is None:
        print("vigil: --check needs metrics_port (the /readyz endpoint)", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/readyz", timeout=3) as reply:
            return 0 if reply.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def _model_command(handler: Handler) -> Handler:
    """A checkpoint or weights file that will not load is reported in one line, not a traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from detector.models.errors import ModelLoadError

        try:
            return handler(args)
        except ModelLoadError as error:
            print(f"vigil: {error}", file=sys.stderr)
            return 2

    return run


# -- services ----------------------------------------------------------------------------------


def add_ingest(commands: Commands) -> None:
    parser = _service_command(commands, "ingest", "Read cameras and publish sampled frames to Redis streams.",
                              cmd_ingest, lambda config: config.ingest)  # fmt: skip
    parser.add_argument("--burst", action="store_true", help="exit once every camera has finished")
    parser.add_argument("--max-frames", type=int, help="per camera: stop after publishing this many frames")


def cmd_ingest(args: argparse.Namespace) -> int:
    config = _load(args)
    from ingest.service import IngestService
    from shared.redis import connect

    IngestService(
        config.ingest, config.cameras, client=connect(config.redis), burst=args.burst,
        max_frames=args.max_frames, frames_maxlen={c.id: config.frames_maxlen(c) for c in config.cameras},
    ).run()  # fmt: skip
    return 0


def add_detect(commands: Commands) -> None:
    parser = _service_command(
        commands, "detect", "Detect and track objects in the frames of the cameras this replica owns.",
        _model_command(cmd_detect), lambda config: config.detector,
    )  # fmt: skip
    parser.add_argument("--max-frames", type=int, help="exit after processing this many frames")


def cmd_detect(args: argparse.Namespace) -> int:
    config = _load(args)
    from detector.runner import DetectorRunner
    from detector.service import DetectorService
    from shared.redis import connect
    from shared.registry import registered_cameras

    client = connect(config.redis)
    cameras = [camera.id for camera in config.cameras if camera.enabled]
    if not cameras:
        cameras = registered_cameras(client)
        print(f"vigil detect: no cameras in the config; using the {len(cameras)} in the registry",
              file=sys.stderr)  # fmt: skip
    runner = DetectorRunner.from_config(config.detector)
    motion = {camera: config.motion_for(camera) for camera in cameras}
    DetectorService(
        config.detector, cameras, client=client, runner=runner, max_frames=args.max_frames, motion=motion
    ).run()
    return 0


def add_alerts(commands: Commands) -> None:
    _service_command(
        commands, "alerts", "Apply alert rules to detections; publish events over ZeroMQ and keep a history.",
        cmd_alerts, lambda config: config.alerts,
    )  # fmt: skip


def cmd_alerts(args: argparse.Namespace) -> int:
    config = _load(args)
    from alerts.service import AlertService
    from shared.redis import connect

    AlertService(config.alerts, config.cameras, client=connect(config.redis)).run()
    return 0


def add_sinks(commands: Commands) -> None:
    parser = _service_command(
        commands, "sinks", "Deliver recorded alert events to MQTT brokers and webhooks (docs/sinks.md).",
        cmd_sinks, lambda config: config.sinks,
    )  # fmt: skip
    parser.add_argument("--replay-dead", metavar="SINK",
                        help="deliver SINK's dead letters (a refused one is kept), then exit")  # fmt: skip


def cmd_sinks(args: argparse.Namespace) -> int:
    config = _load(args)
    from shared.redis import connect

    client = connect(config.redis)
    if args.replay_dead:
        return _replay_dead(config, args.replay_dead, client)
    from alerts.sinks.service import SinkService

    SinkService(config.sinks, client=client, sensors=sensors(config)).run()
    return 0


def add_record(commands: Commands) -> None:
    parser = _service_command(
        commands, "record", "Cut an H.264 clip and a snapshot per alert, kept in the event store.",
        cmd_record, lambda config: config.record,
    )  # fmt: skip
    parser.add_argument("--upgrade-db", action="store_true",
                        help="migrate the event store's schema to this build's, then exit")  # fmt: skip


def cmd_record(args: argparse.Namespace) -> int:
    config = _load(args)
    from shared.eventstore.store import upgrade_schema

    if args.upgrade_db:
        before, now = upgrade_schema(config.record.store_url)
        done = f"{before or 'empty'} -> {now}" if before != now else f"{now} (up to date)"
        print(f"event store schema: {done}")
        return 0
    from recorder.encoder import ffmpeg_available
    from recorder.service import RecordService
    from shared.eventstore import EventStore
    from shared.redis import connect

    if not ffmpeg_available():
        print("vigil record: no ffmpeg on PATH (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    store = EventStore.open(config.record.store_url, upgrade=config.record.upgrade_db)
    RecordService(config.record, config.cameras, client=connect(config.redis), store=store).run()
    store.close()
    return 0


def sensors(config: VigilConfig) -> list[tuple[str, str]]:
    """(camera, rule) of every enabled camera and each rule that applies to it (Home Assistant's sensors)."""
    return [(camera.id, rule.name) for camera in config.cameras if camera.enabled
            for rule in config.alerts.rules if not rule.cameras or camera.id in rule.cameras]  # fmt: skip


def _replay_dead(config: VigilConfig, name: str, client: Any) -> int:  # client: a redis.Redis
    from alerts.sinks.deadletter import DeadLetters, replay_dead
    from alerts.sinks.targets import open_sink

    target = next((t for t in config.sinks.targets if t.name == name), None)
    if target is None:
        print(f"vigil sinks: no sink {name!r} in sinks.targets", file=sys.stderr)
        return 2
    if target.type == "mqtt":  # beside the service's own connection, not instead of it
        target = target.model_copy(update={"client_id": f"{target.client_id or 'vigil-' + name}-replay"})
    sink = open_sink(target, sensors=sensors(config))
    sink.open()
    try:
        report = replay_dead(sink, DeadLetters(client, name, maxlen=target.dead_maxlen))
    finally:
        sink.close()
    for entry_id, error in report.still_dead:
        print(f"{entry_id}: still dead: {error}")
    stopped = f"; stopped: {report.stopped}" if report.stopped else ""
    print(f"sink {name}: {report.delivered} re-delivered, {len(report.still_dead)} kept{stopped}")
    return 0 if not report.still_dead and not report.stopped else 1


def add_web(commands: Commands) -> None:
    parser = _service_command(commands, "web", "The operator console: live camera grid, alerts with clips, "
                              "review, a REST API (docs/web.md).", cmd_web,
                              lambda config: config.web)  # fmt: skip
    parser.add_argument("--set-password", action="store_true",
                        help="ask for the console password, print its hash (web.password_hash)")  # fmt: skip
    parser.add_argument("--write", metavar="FILE", help="with --set-password: write the hash to FILE instead "
                        "(web.password_hash_file)")  # fmt: skip
    parser.add_argument("--add-token", metavar="NAME", help="make an API token for an integrator, keep its "
                        "hash in web.api_tokens_file and print it (once)")  # fmt: skip


def cmd_web(args: argparse.Namespace) -> int:
    if args.set_password:
        return _set_password(args.write)
    config = _load(args)
    if args.add_token:
        from web.auth import add_token

        if config.web.api_tokens_file is None:
            print("vigil web: --add-token needs web.api_tokens_file in the config", file=sys.stderr)
            return 2
        print(add_token(config.web.api_tokens_file, args.add_token))
        return 0
    from shared.eventstore import EventStore
    from shared.redis import connect
    from web.console import Console
    from web.service import WebService

    store = EventStore.open(config.record.store_url, upgrade=False)
    console = Console.build(config.web, client=connect(config.redis), store=store,
                            clips_dir=Path(config.record.clips_dir))  # fmt: skip
    try:
        WebService(config.web, console).run()
    finally:
        store.close()
    return 0


def _set_password(path: str | None) -> int:
    from web.auth import write_private
    from web.passwords import hash_password, prompt_password

    password = prompt_password()
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"vigil web: a password of at least {MIN_PASSWORD_CHARS} characters, please", file=sys.stderr)
        return 2
    hashed = hash_password(password)
    if path is None:
        print(hashed)
        return 0
    write_private(Path(path), hashed + "\n")
    print(f"wrote the password hash to {path}: set web.password_hash_file: {path}")
    return 0


# -- operators ---------------------------------------------------------------------------------


def add_subscribe(commands: Commands) -> None:
    parser = _command(
        commands, "subscribe", "Print alert events as they happen (after replaying history with --since).",
        cmd_subscribe, config=True,
    )  # fmt: skip
    parser.add_argument(
        "--endpoint", action="append", default=None,
        help=f"alerts service to connect to (repeatable; default {DEFAULT_SUBSCRIBE_ENDPOINT})",
    )  # fmt: skip
    parser.add_argument("--camera", action="append", default=[], help="only this camera (repeatable)")
    parser.add_argument("--label", action="append", default=[], help="only this label (repeatable)")
    parser.add_argument("--since", help="first replay the history of this long ago: 90s, 10m, 2h")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--client-key", help="CURVE: this subscriber's secret key file")
    parser.add_argument("--server-key", help="CURVE: the alerts service's public key file")


def cmd_subscribe(args: argparse.Namespace) -> int:
    from alerts.subscriber import AlertSubscriber, ClientCurve
    from shared.redis import connect

    config = _load(args)
    curve = ClientCurve(args.client_key, args.server_key) if args.client_key else None
    history = connect(config.redis) if args.since else None
    since_s = parse_duration(args.since) if args.since else None
    endpoints = args.endpoint or [DEFAULT_SUBSCRIBE_ENDPOINT]
    with AlertSubscriber(endpoints, cameras=args.camera, labels=args.label, history=history,
                         since_s=since_s, curve=curve) as subscriber:  # fmt: skip
        try:
            for event in subscriber.events():
                print(event.to_json() if args.json else describe(event), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def add_keys(commands: Commands) -> None:
    parser = _command(commands, "keys", "Make the alerts service's CURVE keys; authorize, list and revoke "
                      "subscribers.", cmd_keys)  # fmt: skip
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("-c", "--config", help="YAML config file whose alerts.curve names the key files "
                       "(default: $VIGIL_CONFIG)")  # fmt: skip
    where.add_argument("--dir", help="a keys folder instead: server.key_secret, authorized/, clients/")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("init", parents=[where], help="make the service's key pair (an existing one is kept)")
    add = actions.add_parser("add", parents=[where], help="authorize a subscriber (a key pair made here in "
                             "clients/, or its own public key)")  # fmt: skip
    add.add_argument("name", help="the subscriber's name: letters, digits, '_', '.', '-'")
    add.add_argument("--public-key", help="the subscriber's public key file ('-': standard input)")
    actions.add_parser("list", parents=[where], help="the authorized subscribers")
    revoke = actions.add_parser("revoke", parents=[where], help="remove a subscriber's key: it receives "
                                "nothing more, within seconds")  # fmt: skip
    revoke.add_argument("name")
    actions.add_parser("server-key", parents=[where], help="print the service's public key file "
                       "(a subscriber's --server-key)")  # fmt: skip
    pair = actions.add_parser("pair", help="make a subscriber key pair in a folder (on the subscriber's "
                              "machine; then `add NAME --public-key` on the alerts host)")  # fmt: skip
    pair.add_argument("name")
    pair.add_argument("--out", required=True, help="folder for NAME.key and NAME.key_secret")


def _key_store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The keys of ``--dir``, else of the config's ``alerts.curve``; None if neither is given."""
    from alerts.keys import KeyStore

    if args.dir:
        return KeyStore.in_folder(args.dir)
    curve = _load(args).alerts.curve
    return KeyStore.from_config(curve) if curve is not None else None


def cmd_keys(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from alerts.keys import KeyStoreError, create_pair

    try:
        if args.action == "pair":
            public, secret = create_pair(Path(args.out), args.name)
            print(f"{secret}: the secret key, for `vigil subscribe --client-key`; keep it here")
            print(f"{public}: the public key; authorize it on the alerts host: vigil keys add {args.name} "
                  "--public-key FILE")
            return 0
        if (store := _key_store(args)) is None:
            print("vigil keys: give --dir, or a config with alerts.curve", file=sys.stderr)
            return 2
        if args.action == "init":
            made = store.init()
            print(f"{'made' if made else 'kept'} the alerts key pair: {store.server_secret} (secret: the "
                  f"alerts service only) and {store.server_public} (subscribers' --server-key)")
            if args.dir:
                curve = store.curve_config()
                print(f"alerts:\n  curve:\n    server_secret_key_file: {curve.server_secret_key_file}\n"
                      f"    authorized_keys_dir: {curve.authorized_keys_dir}")
        elif args.action == "server-key":
            print(store.server_public_key(), end="")
        elif args.action == "add" and args.public_key == "-":
            with tempfile.NamedTemporaryFile("w", suffix=".key") as given:
                given.write(sys.stdin.read())
                given.flush()
                print(f"authorized {args.name}: {store.add(args.name, public_key_file=Path(given.name))}")
        elif args.action == "add":
            given = Path(args.public_key) if args.public_key else None
            print(f"authorized {args.name}: {store.add(args.name, public_key_file=given)}")
            if given is None:
                print(f"its key pair: {store.clients / args.name}.key_secret (--client-key) and .key; give "
                      f"{args.name} the pair and {store.server_public} (--server-key)")
        elif args.action == "list":
            for subscriber in store.subscribers():
                added = f"{subscriber.added:%Y-%m-%d %H:%M}Z"
                print(f"{subscriber.name:<24} {subscriber.public_key}  added {added}")
        elif args.action == "revoke":
            removed = store.revoke(args.name)
            print(f"revoked {args.name} ({', '.join(map(str, removed))} removed): the alerts service drops "
                  "it within seconds")
    except KeyStoreError as error:
        print(f"vigil keys: {error}", file=sys.stderr)
        return 1
    return 0


def add_cameras(commands: Commands) -> None:
    parser = _command(commands, "cameras", "Show every camera's status from the Redis registry.", cmd_cameras,
                      config=True)  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_cameras(args: argparse.Namespace) -> int:
    from shared.redis import connect
    from shared.registry import read_statuses

    statuses = read_statuses(connect(_load(args).redis))
    print(
        json.dumps([status.__dict__ for status in statuses], indent=2)
        if args.json
        else cameras_table(statuses)
    )
    return 0


def add_migrate_keys(commands: Commands) -> None:
    help_text = "Move Redis state to the hash-tagged key layout (services stopped; see docs/scaling.md)."
    parser = _command(commands, "migrate-keys", help_text, cmd_migrate_keys, config=True)
    parser.add_argument("--to", metavar="URL",
                        help="copy into another Redis (a new redis+cluster://...); default: rename in place")
    parser.add_argument("--delete", action="store_true", help="then delete the old-layout keys of redis.url")


def cmd_migrate_keys(args: argparse.Namespace) -> int:
    from shared.config import RedisConfig
    from shared.redis import connect
    from vigil.migrate import migrate_keys

    config = _load(args)
    if args.to:
        register_url_secrets(args.to)
    target = connect(RedisConfig(url=args.to)) if args.to else None
    done = migrate_keys(connect(config.redis), target, delete=args.delete)
    for kind, count in sorted(done.items()):
        print(f"{count:8d}  {kind}")
    print("nothing in the old layout" if not done else "done")
    return 0


def add_demo(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="Run ingest, detect and alerts on the bundled sample clip and print the alerts.",
        description="Run the whole pipeline on the bundled sample (samples/pistols.mp4) in one process, with "
        "$VIGIL_REDIS_URL if it answers, else an embedded Redis; print alerts as they happen and a summary.",
    )
    parser.add_argument("--sample", help="video file to play instead (e.g. ../shared/data/videos/vtest.avi)")
    parser.add_argument("--cameras", type=int, default=1, help="how many simulated cameras play the clip")
    parser.add_argument("--weights", help="detector checkpoint (default: the shipped pistol detector)")
    parser.add_argument("--video", help="also write the first camera's frames, annotated, to this .mp4")
    parser.add_argument("--json", action="store_true", help="alerts as JSON lines")
    parser.add_argument(
        "--metrics-port", type=int,
        help="serve the ingest, detector and alerts metrics on this port and the next two",
    )  # fmt: skip
    parser.add_argument("--web", action=argparse.BooleanOptionalAction, default=True,
                        help="also record clips and serve the console on 127.0.0.1 (default on)")  # fmt: skip
    parser.add_argument("--web-port", type=int, default=8080, help="the console's port (else a free one)")
    parser.set_defaults(handler=_model_command(cmd_demo))


def cmd_demo(args: argparse.Namespace) -> int:
    from vigil.demo import DemoOptions, run_demo

    setup_logging("WARNING")
    return run_demo(DemoOptions(
        sample=args.sample, cameras=args.cameras, as_json=args.json, video=args.video, weights=args.weights,
        metrics_port=args.metrics_port, web=args.web, web_port=args.web_port,
    ))  # fmt: skip


# -- models ------------------------------------------------------------------------------------


def _load_detector(weights: str, device: str, score_thresh: float | None = None):  # type: ignore[no-untyped-def]
    """The checkpoint's detector on ``device``, with an optional score threshold."""
    from detector.device import pick_device
    from detector.models.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(weights)
    model = checkpoint.build().to(pick_device(device))
    if score_thresh is not None:
        model.score_thresh = score_thresh
    return checkpoint, model


def add_train(commands: Commands) -> None:
    parser = _command(
        commands, "train", "Train a detector on a YOLO-format data set.", _model_command(cmd_train)
    )
    parser.add_argument("--data", required=True, help="data.yaml (YOLO format)")
    parser.add_argument("--model", default="yolo_lite0", help="model recipe (see `vigil models`)")
    parser.add_argument("--img", type=int, default=416, help="input size (square, multiple of 32)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--trainable-stages", type=int, default=3, help="backbone stages to train, of 5")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--out", default="runs/train", help="output folder (checkpoints, metrics, curves)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/state.pt (else from --init)")
    parser.add_argument(
        "--init", help="with --resume and no state.pt: continue from this checkpoint's weights"
    )
    parser.add_argument("--cache", default="runs/cache", help="folder for the pre-resized images")
    parser.add_argument("--max-batches", type=int, help="batches per epoch (smoke runs)")
    parser.add_argument("--no-pretrained", action="store_true", help="random init, no ImageNet weights")
    parser.add_argument("--crops-per-image", type=int, default=4, help="crop models: crops per image, epoch")
    parser.add_argument("--negatives", help="a video without the classes: background crops (crop models), "
                        "hard-negative images (YOLO with --mosaic/--copy-paste/--zoom-out)")
    parser.add_argument("--negatives-until", type=int, help="only the frames before this index of it")
    parser.add_argument("--mosaic", type=float, default=0.0, help="YOLO: share of 4-image mosaics")
    parser.add_argument("--copy-paste", type=float, default=0.0,
                        help="YOLO: share of images with 1-3 pistol crops pasted in at CCTV size")
    parser.add_argument("--zoom-out", type=float, default=0.0,
                        help="YOLO: share of images zoomed out until their largest object is 15-60 px")
    parser.add_argument("--negative-share", type=float, default=0.1,
                        help="YOLO with --negatives: share of images built on a negative frame")
    parser.add_argument("--multi-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="YOLO: each batch at a random side in LOW-HIGH × --img (multiples of 32)")
    parser.add_argument("--close-mosaic", type=int, default=0,
                        help="YOLO: the last N epochs without mosaic, copy-paste and zoom-out")
    parser.add_argument("--rotate", type=float, default=0.0,
                        help="detectors: share of images (and pasted pistols) turned by 90, 180 or 270°")
    parser.add_argument("--finetune", metavar="CHECKPOINT",
                        help="a new run from this trained checkpoint's weights (same --model and classes)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up before the cosine")
    parser.add_argument("--ema-decay", type=float, default=0.9995)
    parser.add_argument("--seed", type=int, default=0)


def cmd_train(args: argparse.Namespace) -> int:
    from detector.training.composite import CompositeConfig
    from detector.training.train import TrainConfig, Trainer

    setup_logging("INFO")
    composite = None
    if args.mosaic or args.copy_paste or args.zoom_out:
        composite = CompositeConfig(mosaic=args.mosaic, copy_paste=args.copy_paste, zoom_out=args.zoom_out,
                                    negative_share=args.negative_share)
    trainer = Trainer(TrainConfig(
        data=args.data, model=args.model, input_size=args.img, epochs=args.epochs, batch_size=args.batch,
        lr=args.lr, trainable_stages=args.trainable_stages, workers=args.workers, out_dir=args.out,
        cache_dir=args.cache, device=args.device, max_train_batches=args.max_batches,
        pretrained=not args.no_pretrained, crops_per_image=args.crops_per_image, negatives=args.negatives,
        negatives_until=args.negatives_until, composite=composite,
        multi_scale=tuple(args.multi_scale) if args.multi_scale else None, warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay, seed=args.seed, close_mosaic=args.close_mosaic, rotate=args.rotate,
        finetune=args.finetune,
    ))  # fmt: skip
    if args.resume and not trainer.resume() and args.init:
        trainer.warm_start(args.init)
    print(f"best checkpoint: {trainer.fit()}")
    return 0


def add_models(commands: Commands) -> None:
    _command(commands, "models", "EfficientNet B0-B7 scaling table and detector recipes.", cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from detector.models.backbones import compound_scaling_table
    from detector.models.registry import RECIPES

    print("EfficientNet compound scaling (depth d, width w, resolution r = α^φ, β^φ, γ^φ):")
    print(f"{'backbone':<20} {'w':>4} {'d':>4} {'res':>5} {'params':>11} {'GMACs@res':>10}")
    for row in compound_scaling_table():
        print(
            f"{row['name']:<20} {row['width']:>4} {row['depth']:>4} {row['resolution']:>5} "
            f"{row['params']:>11,} {row['gmacs']:>10.3f}"
        )
    print("\nDetector recipes (vigil train --model NAME):")
    for name, recipe in RECIPES.items():
        print(f"  {name:<20} {recipe.arch:<14} {recipe.backbone}")
    return 0


def add_eval(commands: Commands) -> None:
    parser = _command(commands, "eval", "COCO mAP, precision/recall and speed of a checkpoint.",
                      _model_command(cmd_eval))  # fmt: skip
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("--data", required=True, help="data.yaml (YOLO format)")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--score-thresh", type=float, default=0.4, help="operating point for P/R")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--plot", help="write the PR curve PNG here")
    parser.add_argument("--engine", default="torch", choices=("auto", "torch", "openvino", "onnxruntime"),
                        help="what runs the network (docs/engines.md)")  # fmt: skip
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "int8"))
    parser.add_argument("--letterbox", default="square", choices=("square", "rect"),
                        help="square (as trained) or rect: padded to a multiple of the stride")  # fmt: skip
    parser.add_argument("--img", type=int, help="input size (default: the checkpoint's)")


def cmd_eval(args: argparse.Namespace) -> int:
    from detector.engines.build import build_detector, set_input_size
    from detector.engines.serving import EngineChoice
    from detector.training.datasets import DataSpec, YoloDataset
    from detector.training.evaluate import evaluate, plot_pr_curve

    setup_logging("WARNING")
    built = build_detector(EngineChoice(
        Path(args.weights), engine=args.engine, precision=args.precision, device=args.device,
        rect=args.letterbox == "rect",
    ))  # fmt: skip
    checkpoint, model = built.checkpoint, built.model
    model.score_thresh = 0.001
    if args.img:
        set_input_size(model, args.img)
    spec = DataSpec.load(args.data)
    if args.split not in spec.splits:
        print(f"vigil: {args.data} has no {args.split!r} split", file=sys.stderr)
        return 2
    report = evaluate(
        model, YoloDataset(spec.splits[args.split]), checkpoint.class_names, batch_size=args.batch,
        score_thresh=args.score_thresh, device=built.device,
    )  # fmt: skip
    print(json.dumps({"weights": args.weights, "split": args.split, "engine": built.label,
                      "letterbox": args.letterbox, "input_size": model.input_size,
                      **report.summary()}, indent=2))  # fmt: skip
    if args.plot:
        print(f"PR curve: {plot_pr_curve(report, args.plot, title=f'{checkpoint.name} on {args.split}')}")
    return 0


def add_predict(commands: Commands) -> None:
    parser = _command(
        commands, "predict", "Annotate images, a folder or a video.", _model_command(cmd_predict)
    )
    parser.add_argument("source", help="image, folder of images, or video file")
    parser.add_argument("--weights", help="checkpoint file (.pt; default: the shipped pistol detector)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--score-thresh", type=float, default=0.4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="also write each image's (each video frame's) "
                        "detections as JSON: boxes in its pixels, labels, scores")  # fmt: skip
    parser.add_argument("--labels", action="store_true", help="also write YOLO-format .txt labels: "
                        "class cx cy w h (fractions of the image) score")  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> int:
    from detector.predict import predict
    from detector.runner import DEFAULT_WEIGHTS

    setup_logging("WARNING")
    weights = args.weights or str(DEFAULT_WEIGHTS)
    checkpoint, model = _load_detector(weights, args.device, score_thresh=args.score_thresh)
    results = [name for name, wanted in (("json", args.json), ("labels", args.labels)) if wanted]
    count = predict(model, args.source, args.out, checkpoint.class_names, results=results)
    also = f" with {' and '.join(results)} results" if results else ""
    print(f"annotated {count} image(s) or frame(s) into {args.out}{also}")
    return 0


def add_export(commands: Commands) -> None:
    parser = _command(commands, "export", "Export a YOLO checkpoint to ONNX or TorchScript.",
                      _model_command(cmd_export))  # fmt: skip
    parser.add_argument("--weights", required=True, help=WEIGHTS_HELP)
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--out", required=True, help="output file")


def cmd_export(args: argparse.Namespace) -> int:
    from detector.export import export_onnx, export_torchscript

    setup_logging("WARNING")
    _checkpoint, model = _load_detector(args.weights, "cpu")
    exporter = export_onnx if args.format == "onnx" else export_torchscript
    parity = exporter(model, args.out)
    print(
        f"wrote {args.out}; max |diff| vs eager: scores {parity.scores:.2e}, boxes {parity.boxes_px:.2e} px"
    )
    return 0 if parity.ok() else 1


def add_quantize(commands: Commands) -> None:
    parser = _command(
        commands, "quantize", "Make the OpenVINO INT8 model of a YOLO checkpoint, gated on val mAP.",
        _model_command(cmd_quantize),
    )  # fmt: skip
    parser.add_argument("--weights", help="checkpoint file (.pt; default: the shipped pistol detector)")
    parser.add_argument("--data", required=True, help="data.yaml: calibration on train, the gate on val")
    parser.add_argument("--calibration", type=int, default=300, help="training images to calibrate on")
    parser.add_argument("--max-drop", type=float, default=0.01, help="largest val mAP@0.5 drop accepted")
    parser.add_argument("--cache-dir", help="engine cache folder (default: $XDG_CACHE_HOME/vigil/engines)")
    parser.add_argument("--ship", action="store_true", help="store the INT8 model beside the shipped "
                        "checkpoints (detector/weights/engines/) instead of the cache")  # fmt: skip


def cmd_quantize(args: argparse.Namespace) -> int:
    from detector.engines.quantize import quantize
    from detector.engines.serving import SHIPPED_ENGINES
    from detector.runner import DEFAULT_WEIGHTS

    setup_logging("WARNING")
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    report, entry = quantize(
        Path(args.weights or DEFAULT_WEIGHTS), Path(args.data), calibration=args.calibration,
        max_drop=args.max_drop, cache_dir=cache_dir, out_dir=SHIPPED_ENGINES if args.ship else None,
    )  # fmt: skip
    print(json.dumps(report.summary(), indent=2))
    if entry is None:
        print(f"vigil quantize: INT8 refused: {report.reason()}", file=sys.stderr)
        return 1
    print(f"INT8 model accepted ({report.reason()}): {entry.folder}")
    return 0


COMMANDS = (
    add_ingest, add_detect, add_alerts, add_sinks, add_record, add_web, add_subscribe, add_keys,
    add_cameras, add_migrate_keys, add_demo, add_train, add_models, add_eval, add_predict, add_export,
    add_quantize,
)  # fmt: skip
TORCH_COMMANDS = {"detect", "train", "eval", "predict", "export", "demo", "quantize"}


def _may_run_openvino(args: argparse.Namespace) -> bool:
    """Whether this command may load OpenVINO (which aborts under tcmalloc; vigil/runtime.py): the
    service commands whose detector engine is auto or openvino, when it is installed."""
    import importlib.util

    if args.command not in ("detect", "demo", "quantize", "eval"):
        return False
    if importlib.util.find_spec("openvino") is None:
        return False
    if args.command == "eval":
        return args.engine in ("auto", "openvino")
    if args.command != "detect":
        return True
    try:
        return load_config(args.config).detector.engine in ("auto", "openvino")
    except ConfigError:
        return False  # the command itself reports the broken config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Vigil: streaming video surveillance. Cameras -> ingest -> Redis -> detector -> alerts.",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and args.command in TORCH_COMMANDS:
        tune_for_torch(["-m", "vigil", *sys.argv[1:]], tcmalloc=not _may_run_openvino(args))
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"vigil: {error}", file=sys.stderr)
        return 2
    except StoreUnavailable as error:
        print(f"vigil: {error}", file=sys.stderr)
        return 3
    except FileNotFoundError as error:
        print(f"vigil: file not found: {error.filename}", file=sys.stderr)
        return 2
    except VigilError as error:  # an endpoint that will not bind, a value that does not parse
        print(f"vigil: {error}", file=sys.stderr)
        return 2
