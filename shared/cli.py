"""``vigil``: the command line, and the one place that composes services.

Commands stay thin: parse options, load config, build a service, run it. Heavy imports (cv2,
torch) happen inside the command that needs them, so ``vigil --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from shared import __version__, keys
from shared.config import VigilConfig, load_config
from shared.errors import ConfigError, StoreUnavailable
from shared.logs import register_url_secrets, setup_logging
from shared.runtime import tune_for_torch
from shared.schemas import AlertEvent


def _load(args: argparse.Namespace) -> VigilConfig:
    config = load_config(args.config)
    register_url_secrets(config.redis.url)
    for camera in config.cameras:
        register_url_secrets(camera.url)
    setup_logging(config.logging.level, config.logging.format)
    return config


def cmd_ingest(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.check:
        return _check_ready(config.ingest.metrics_port)
    from ingest.service import IngestService
    from shared.redis import connect

    service = IngestService(
        config.ingest, config.cameras, client=connect(config.redis), burst=args.burst,
        max_frames=args.max_frames,
    )  # fmt: skip
    service.run()
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.check:
        return _check_ready(config.detector.metrics_port)
    from detector.runner import DetectorRunner
    from detector.service import DetectorService
    from shared.redis import connect

    client = connect(config.redis)
    cameras = [camera.id for camera in config.cameras if camera.enabled]
    if not cameras:
        cameras = sorted(m.decode() for m in client.smembers(keys.CAMERAS))
        print(
            f"vigil detect: no cameras in the config; using the {len(cameras)} in the registry",
            file=sys.stderr,
        )
    cfg = config.detector
    runner = DetectorRunner(
        cfg.weights, device=cfg.device, score_thresh=cfg.score_thresh, nms_iou_thresh=cfg.nms_iou_thresh,
        torch_threads=cfg.torch_threads,
    )  # fmt: skip
    DetectorService(cfg, cameras, client=client, runner=runner, max_frames=args.max_frames).run()
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.check:
        return _check_ready(config.alerts.metrics_port)
    from alerts.service import AlertService
    from shared.redis import connect

    AlertService(config.alerts, config.cameras, client=connect(config.redis)).run()
    return 0


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


DEFAULT_SUBSCRIBE_ENDPOINT = "tcp://127.0.0.1:5556"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise SystemExit(f"vigil: not a duration: {text!r} (e.g. 90s, 10m, 2h)") from None


def describe(event: AlertEvent) -> str:
    """One readable line for an alert event."""
    when = time.strftime("%H:%M:%S", time.localtime(event.ts_ns / 1e9))
    box = ", ".join(f"{v:.0f}" for v in event.box)
    return (
        f"{when} {event.kind.upper():<7} {event.severity:<8} {event.rule} camera={event.camera} "
        f"{event.label} score={event.score:.2f} track={event.track_id} box=[{box}] "
        f"snapshot={event.snapshot} id={event.event_id}"
    )


def _check_ready(port: int | None) -> int:
    """Exit code for a container HEALTHCHECK: 0 when the local service answers /readyz."""
    if port is None:
        print("vigil: --check needs metrics_port (the /readyz endpoint)", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as reply:
            return 0 if reply.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def cmd_cameras(args: argparse.Namespace) -> int:
    from shared.redis import connect
    from shared.registry import read_statuses

    config = _load(args)
    statuses = read_statuses(connect(config.redis))
    if args.json:
        print(json.dumps([status.__dict__ for status in statuses], indent=2))
        return 0
    now_ns = time.time_ns()
    print(
        f"{'CAMERA':<20} {'STATE':<10} {'OWNER':<24} {'FPS':>6} {'LAST FRAME':>11} {'SIZE':>10} "
        f"{'FRAMES':>8} {'RECONN':>6}  LAST ERROR"
    )
    for s in statuses:
        last = f"{(now_ns - s.last_frame_ns) / 1e9:.1f}s ago" if s.last_frame_ns else "never"
        state = s.state if s.age_s(now_ns) < 30 else f"{s.state}?"
        size = f"{s.width}x{s.height}" if s.width else "-"
        print(
            f"{s.camera:<20} {state:<10} {s.owner[:24]:<24} {s.fps:>6.1f} {last:>11} {size:>10} "
            f"{s.frames_published:>8} {s.reconnects:>6}  {s.last_error}"
        )
    if not statuses:
        print("(no cameras registered: is `vigil ingest` running against this Redis?)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shared.demo import run_demo

    setup_logging("WARNING")
    return run_demo(
        sample=args.sample,
        cameras=args.cameras,
        as_json=args.json,
        video=args.video,
        weights=args.weights,
        metrics_port=args.metrics_port,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from detector.train import TrainConfig, Trainer

    setup_logging("INFO")
    config = TrainConfig(
        data=args.data, model=args.model, input_size=args.img, epochs=args.epochs, batch_size=args.batch,
        lr=args.lr, trainable_stages=args.trainable_stages, workers=args.workers, out_dir=args.out,
        cache_dir=args.cache, device=args.device, max_train_batches=args.max_batches,
    )  # fmt: skip
    trainer = Trainer(config)
    if args.resume and not trainer.resume() and args.init:
        trainer.warm_start(args.init)
    best = trainer.fit()
    print(f"best checkpoint: {best}")
    return 0


def _load_detector(weights: str, device: str, score_thresh: float | None = None):  # type: ignore[no-untyped-def]
    from detector.device import pick_device
    from detector.models.registry import Checkpoint

    checkpoint = Checkpoint.load(weights)
    model = checkpoint.build().to(pick_device(device))
    if score_thresh is not None:
        model.score_thresh = score_thresh
    return checkpoint, model


def cmd_models(args: argparse.Namespace) -> int:
    from detector.models.backbones import compound_scaling_table
    from detector.models.registry import MODELS

    print("EfficientNet compound scaling (depth d, width w, resolution r = α^φ, β^φ, γ^φ):")
    print(f"{'backbone':<20} {'w':>4} {'d':>4} {'res':>5} {'params':>11} {'GMACs@res':>10}")
    for row in compound_scaling_table():
        print(
            f"{row['name']:<20} {row['width']:>4} {row['depth']:>4} {row['resolution']:>5} "
            f"{row['params']:>11,} {row['gmacs']:>10.3f}"
        )
    print("\nDetector recipes (vigil train --model NAME):")
    for name, recipe in MODELS.items():
        print(f"  {name:<20} {recipe['arch']:<12} {recipe['backbone']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json as json_module

    from detector.datasets import DataSpec, YoloDataset
    from detector.evaluate import evaluate, plot_pr_curve

    setup_logging("WARNING")
    checkpoint, model = _load_detector(args.weights, args.device, score_thresh=0.001)
    spec = DataSpec.load(args.data)
    if args.split not in spec.splits:
        print(f"vigil: {args.data} has no {args.split!r} split", file=sys.stderr)
        return 2
    report = evaluate(
        model, YoloDataset(spec.splits[args.split]), checkpoint.class_names, batch_size=args.batch,
        score_thresh=args.score_thresh, device=next(model.parameters()).device,
    )  # fmt: skip
    print(json_module.dumps({"weights": args.weights, "split": args.split, **report.summary()}, indent=2))
    if args.plot:
        print(f"PR curve: {plot_pr_curve(report, args.plot, title=f'{checkpoint.name} on {args.split}')}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from detector.predict import predict

    setup_logging("WARNING")
    checkpoint, model = _load_detector(args.weights, args.device, score_thresh=args.score_thresh)
    count = predict(model, args.source, args.out, checkpoint.class_names)
    print(f"annotated {count} image(s) or frame(s) into {args.out}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Vigil: streaming video surveillance. Cameras -> ingest -> Redis -> detector -> alerts.",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            help="YAML config file (default: $VIGIL_CONFIG, else built-in defaults)",
        )
        return sub

    ingest = add("ingest", "Read cameras and publish sampled frames to Redis streams.")
    ingest.add_argument("--burst", action="store_true", help="exit once every camera has finished")
    ingest.add_argument("--max-frames", type=int, help="per camera: stop after publishing this many frames")
    ingest.add_argument(
        "--check", action="store_true", help="health check: exit 0 if the local ingest is ready"
    )
    ingest.set_defaults(handler=cmd_ingest)

    detect = add("detect", "Detect and track objects in the frames of the cameras this replica owns.")
    detect.add_argument("--max-frames", type=int, help="exit after processing this many frames")
    detect.add_argument(
        "--check", action="store_true", help="health check: exit 0 if the local detector is ready"
    )
    detect.set_defaults(handler=cmd_detect)

    alerts = add("alerts", "Apply alert rules to detections; publish events over ZeroMQ and keep a history.")
    alerts.add_argument(
        "--check", action="store_true", help="health check: exit 0 if the local service is ready"
    )
    alerts.set_defaults(handler=cmd_alerts)

    subscribe = add("subscribe", "Print alert events as they happen (after replaying history with --since).")
    subscribe.add_argument(
        "--endpoint",
        action="append",
        default=None,
        help=f"alerts service to connect to (repeatable; default {DEFAULT_SUBSCRIBE_ENDPOINT})",
    )
    subscribe.add_argument("--camera", action="append", default=[], help="only this camera (repeatable)")
    subscribe.add_argument("--label", action="append", default=[], help="only this label (repeatable)")
    subscribe.add_argument("--since", help="first replay the history of this long ago: 90s, 10m, 2h")
    subscribe.add_argument("--json", action="store_true", help="one JSON object per line")
    subscribe.add_argument("--client-key", help="CURVE: this subscriber's secret key file")
    subscribe.add_argument("--server-key", help="CURVE: the alerts service's public key file")
    subscribe.set_defaults(handler=cmd_subscribe)

    cameras = add("cameras", "Show every camera's status from the Redis registry.")
    cameras.add_argument("--json", action="store_true", help="machine-readable output")
    cameras.set_defaults(handler=cmd_cameras)

    demo = commands.add_parser(
        "demo",
        help="Run ingest, detect and alerts on the bundled sample clip and print the alerts.",
        description="Run the whole pipeline on the bundled sample (samples/pistols.mp4) in one process, with "
        "$VIGIL_REDIS_URL if it answers, else an embedded Redis; print alerts as they happen and a summary.",
    )
    demo.add_argument("--sample", help="video file to play instead (e.g. ../shared/data/videos/vtest.avi)")
    demo.add_argument("--cameras", type=int, default=1, help="how many simulated cameras play the clip")
    demo.add_argument("--weights", help="detector checkpoint (default: the shipped pistol detector)")
    demo.add_argument("--video", help="also write the first camera's frames, annotated, to this .mp4")
    demo.add_argument("--json", action="store_true", help="alerts as JSON lines")
    demo.add_argument(
        "--metrics-port",
        type=int,
        help="serve the ingest, detector and alerts metrics on this port and the next two (for Prometheus)",
    )
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", help="Train a detector on a YOLO-format data set.")
    train.add_argument("--data", required=True, help="data.yaml (YOLO format)")
    train.add_argument("--model", default="yolo_lite0", help="model recipe (see `vigil models`)")
    train.add_argument("--img", type=int, default=416, help="input size (square, multiple of 32)")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--trainable-stages", type=int, default=3, help="backbone stages to train, of 5")
    train.add_argument("--workers", type=int, default=2, help="data loading processes")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    train.add_argument("--out", default="runs/train", help="output folder (checkpoints, metrics, curves)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/state.pt (else from --init)")
    train.add_argument(
        "--init", help="with --resume and no state.pt: continue from this checkpoint's weights"
    )
    train.add_argument("--cache", default="runs/cache", help="folder for the pre-resized images")
    train.add_argument("--max-batches", type=int, help="batches per epoch (smoke runs)")
    train.set_defaults(handler=cmd_train)

    models = commands.add_parser("models", help="EfficientNet B0-B7 scaling table and detector recipes.")
    models.set_defaults(handler=cmd_models)

    weights_help = "checkpoint file (.pt)"
    evaluate = commands.add_parser("eval", help="COCO mAP, precision/recall and speed of a checkpoint.")
    evaluate.add_argument("--weights", required=True, help=weights_help)
    evaluate.add_argument("--data", required=True, help="data.yaml (YOLO format)")
    evaluate.add_argument("--split", default="val", choices=("train", "val", "test"))
    evaluate.add_argument("--score-thresh", type=float, default=0.4, help="operating point for P/R")
    evaluate.add_argument("--batch", type=int, default=8)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--plot", help="write the PR curve PNG here")
    evaluate.set_defaults(handler=cmd_eval)

    predict = commands.add_parser("predict", help="Annotate images, a folder or a video.")
    predict.add_argument("source", help="image, folder of images, or video file")
    predict.add_argument("--weights", required=True, help=weights_help)
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--score-thresh", type=float, default=0.4)
    predict.add_argument("--device", default="auto")
    predict.set_defaults(handler=cmd_predict)

    export = commands.add_parser("export", help="Export a YOLO checkpoint to ONNX or TorchScript.")
    export.add_argument("--weights", required=True, help=weights_help)
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", required=True, help="output file")
    export.set_defaults(handler=cmd_export)
    return parser


TORCH_COMMANDS = {"detect", "train", "eval", "predict", "export", "demo"}


def _model_error(error: Exception) -> bool:
    """A checkpoint that will not load (corrupt, foreign, mismatched): reported, not a traceback."""
    return type(error).__name__ in {"CheckpointError", "BackboneWeightsError"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and args.command in TORCH_COMMANDS:
        tune_for_torch(["-m", "shared.cli", *sys.argv[1:]])
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
    except ValueError as error:
        if not _model_error(error):
            raise
        print(f"vigil: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
