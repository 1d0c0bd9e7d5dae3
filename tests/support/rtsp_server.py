"""Standalone RTSP test server that re-streams an H.264 mp4 clip in an endless loop.

Run it with the *system* Python (PyGObject and the GStreamer RTSP server bindings are not
installed in the project venv)::

    /usr/bin/python3 tests/support/rtsp_server.py --clip clip.mp4 --port 8554 \
        [--path /cam] [--user U --password P]

Once listening it prints ``READY rtsp://127.0.0.1:PORT/path`` on stdout; SIGTERM or SIGINT
stop it with exit status 0.

How the loop works: each RTSP client gets its own media pipeline
``appsrc ! h264parse ! rtph264pay``. The appsrc is fed by a private reader pipeline
``filesrc ! qtdemux ! h264parse ! appsink`` that demuxes the clip without re-encoding. When
the reader reaches the end of the clip it seeks back to 0 and the feeder adds the clip's
duration to every following timestamp, so the media pipeline sees one continuous stream whose
timestamps never jump back. The RTSP server's sinks synchronise on the clock, which paces
the stream in real time.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402

MEDIA_LAUNCH = (
    "( appsrc name=src is-live=false format=time block=true max-bytes=2000000 "
    "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
)
READER_LAUNCH = (
    "filesrc name=file ! qtdemux ! h264parse config-interval=-1 "
    "! video/x-h264,stream-format=byte-stream,alignment=au "
    "! appsink name=sink sync=false max-buffers=16"
)
# How long the reader may take to produce one access unit before we give up on it.
PULL_TIMEOUT_NS = 5 * Gst.SECOND
PULL_POLL_NS = Gst.SECOND // 10


def log(message: str) -> None:
    """Write a diagnostic line to stderr (stdout carries only the READY line)."""
    print(f"rtsp_server: {message}", file=sys.stderr, flush=True)


class ClipFeeder:
    """Feeds one media pipeline's appsrc with the clip's access units, looping forever."""

    def __init__(self, clip: Path, appsrc: GstApp.AppSrc) -> None:
        self._appsrc = appsrc
        self._reader = Gst.parse_launch(READER_LAUNCH)
        self._reader.get_by_name("file").set_property("location", str(clip))
        self._sink: GstApp.AppSink = self._reader.get_by_name("sink")
        self._lock = threading.Lock()
        self._stopped = False
        self._offset = 0  # ns added to every timestamp of the current pass over the clip
        self._pass_end = 0  # end (ns, already offset) of the latest access unit pushed
        self._caps_set = False
        self._handler_id = appsrc.connect("need-data", self._on_need_data)

    def start(self) -> None:
        """Start the reader pipeline; access units are pushed on demand."""
        self._reader.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        """Stop the reader pipeline and detach from the appsrc (its media is gone)."""
        with self._lock:
            self._stopped = True
            self._appsrc.disconnect(self._handler_id)  # breaks the appsrc <-> feeder cycle
        self._reader.set_state(Gst.State.NULL)
        self._drain_bus()

    def _pull(self) -> Gst.Sample | None:
        """Pull the next access unit, rewinding the reader once at the end of the clip."""
        sample = self._try_pull()
        if sample is None and self._sink.is_eos():
            self._drain_bus()
            self._offset = self._pass_end
            rewound = self._reader.seek_simple(
                Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0
            )
            if not rewound:
                log("cannot seek the clip back to its start")
                return None
            sample = self._try_pull()
        return sample

    def _try_pull(self) -> Gst.Sample | None:
        """Pull one sample; None at EOS, on a reader error or after PULL_TIMEOUT_NS."""
        for _ in range(PULL_TIMEOUT_NS // PULL_POLL_NS):
            sample = self._sink.try_pull_sample(PULL_POLL_NS)
            if sample is not None:
                return sample
            if self._sink.is_eos() or self._drain_bus():
                return None
        return None

    def _drain_bus(self) -> bool:
        """Pop the reader's queued bus messages (nobody watches it); log and report errors."""
        bus = self._reader.get_bus()
        failed = False
        while (message := bus.pop()) is not None:
            if message.type == Gst.MessageType.ERROR:
                error, debug = message.parse_error()
                log(f"reader error: {error.message} ({debug})")
                failed = True
        return failed

    def _on_need_data(self, appsrc: GstApp.AppSrc, _length: int) -> None:
        with self._lock:
            if self._stopped:
                return
            sample = self._pull()
            if sample is None:
                self._drain_bus()
                log("the clip reader produced no data; ending the stream")
                appsrc.end_of_stream()
                return
            if not self._caps_set:
                appsrc.set_property("caps", sample.get_caps())
                self._caps_set = True
            appsrc.push_buffer(self._retime(sample))

    def _retime(self, sample: Gst.Sample) -> Gst.Buffer:
        """Copy the sample's buffer with timestamps shifted into the continuous timeline."""
        segment = sample.get_segment()
        buffer = sample.get_buffer().copy()
        pts = self._shift(buffer.pts, segment)
        dts = self._shift(buffer.dts, segment)
        buffer.pts = pts if pts is not None else Gst.CLOCK_TIME_NONE
        buffer.dts = dts if dts is not None else Gst.CLOCK_TIME_NONE
        start = pts if pts is not None else dts
        if start is not None:
            duration = buffer.duration if buffer.duration != Gst.CLOCK_TIME_NONE else 0
            self._pass_end = max(self._pass_end, start + duration)
        return buffer

    def _shift(self, timestamp: int, segment: Gst.Segment) -> int | None:
        """Map a reader timestamp to the output timeline, or None if it has none."""
        if timestamp == Gst.CLOCK_TIME_NONE:
            return None
        shifted = timestamp - segment.start + self._offset
        return shifted if shifted >= 0 else None


class LoopingClipFactory(GstRtspServer.RTSPMediaFactory):
    """Media factory whose media re-stream the clip forever, one pipeline per client."""

    def __init__(self, clip: Path) -> None:
        super().__init__()
        self._clip = clip
        self.set_launch(MEDIA_LAUNCH)
        self.set_shared(False)
        self.connect("media-configure", self._on_media_configure)

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = ClipFeeder(self._clip, appsrc)
        media.connect("unprepared", lambda _media: feeder.stop())
        feeder.start()


def build_auth(user: str, password: str, factory: GstRtspServer.RTSPMediaFactory) -> GstRtspServer.RTSPAuth:
    """Require Basic auth: only ``user``'s role may access and construct the factory's media."""
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    token = GstRtspServer.RTSPToken.new()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, user)
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    permissions = Gst.Structure.new_empty(user)
    permissions.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    permissions.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.add_role_from_structure(permissions)
    return auth


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, required=True, help="H.264 mp4 file to serve")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--path", default="/cam", help="mount path (default /cam)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--user", help="require RTSP Basic auth with this user name")
    parser.add_argument("--password", help="password for --user")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve the clip until SIGTERM/SIGINT; return the exit status."""
    args = parse_args(argv)
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = LoopingClipFactory(args.clip.resolve())
    if args.user is not None:
        server.set_auth(build_auth(args.user, args.password, factory))
    server.get_mount_points().add_factory(args.path, factory)

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    try:
        source_id = server.attach(None)
    except GLib.Error as error:
        log(f"cannot listen on {args.host}:{args.port}: {error}")
        return 1
    if source_id == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        return 1

    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()

    # Stop accepting, drop the clients (which unprepares their media and stops the feeders).
    GLib.source_remove(source_id)
    server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
