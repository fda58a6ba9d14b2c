"""A real RTSP server for tests: GStreamer's gst-rtsp-server, run with the system Python (gi).

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 [--clip video.mp4] [--fps 15] [--user U --password P]

Serves rtsp://127.0.0.1:PORT/stream on loopback only (with --user/--password, only
to that user: HTTP basic authentication, anyone else gets 401). Without --clip it encodes
a live generated test pattern (a moving ball) with x264; with --clip it loops
the given H.264 MP4. Prints "READY" once listening; stops on SIGTERM/SIGINT.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clip", default=None)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--user", default=None)
    ap.add_argument("--password", default=None)
    args = ap.parse_args()
    Gst.init(None)
    w, h = args.size.split("x")
    if args.clip:
        launch = (
            f"( multifilesrc location={args.clip} loop=true ! qtdemux ! h264parse config-interval=-1 ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    else:
        launch = (
            f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={args.fps}/1 ! "
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    # A live pattern is one shared pipeline for every client. A clip is not: its stream ends at each
    # loop of the file (qtdemux does not follow multifilesrc's restart), and a client reconnecting to a
    # shared media still at its end joined it and got no frame until every client had left (CI once saw
    # one camera of two fail 8 reconnects in a row) - so each client of a clip gets its own pipeline.
    factory.set_shared(not args.clip)
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        print("FAILED to bind", flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
