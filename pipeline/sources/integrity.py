"""What decoding one file found wrong with it, and the one line that says what was lost.

A damaged file rarely makes FFmpeg raise: a truncated MP4 or AVI simply ends
early, and random bytes in the middle are concealed or skipped. So the file
source keeps the evidence as it decodes (`DecodeHealth`) and, at the end,
compares what it decoded with what the container declares (`declared_frames`).
`loss_report` turns that into the stream's error when frames are missing,
naming the file, how many frames it has of how many, and where the damage
starts; every decoded frame has gone down the pipeline by then.

Decode errors are counted from what FFmpeg attaches to this stream's own
packets and frames (a packet the decoder rejects, the demuxer's corrupt flag,
a frame decoded with concealment), not from FFmpeg's log, which is one
process-wide channel that cannot say which stream a line came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# How far short of what the container says a file may end before frames count as lost, by what the
# container says: a frame count is exact; the stream's duration x frame rate may be off by rounding
# (or a little more on a variable-rate file); the container's duration may include a longer audio
# track, so only a large shortfall against it is damage rather than a soundtrack that runs on.
TOLERANCE = {"count": 0.0, "duration": 0.05, "container": 0.25}
MIN_TOLERANCE_FRAMES = 2  # for the estimates
@dataclass
class DecodeHealth:
    """Evidence of damage, counted while one stream decodes (written by its source thread only)."""

    rejected_packets: int = 0  # packets the decoder raised on: skipped, their frames lost
    corrupt_packets: int = 0  # packets the demuxer flagged corrupt (decoded anyway)
    corrupt_frames: int = 0  # frames decoded with errors concealed (FFmpeg's decode_error_flags / CORRUPT)
    discarded_packets: int = 0  # packets the container itself drops (edit lists): never frames
    packets: int = 0  # packets with data the demuxer delivered (one frame each in the usual codecs)
    position_s: float = 0.0  # where decoding is, seconds from the first frame (kept by the source)
    first_trouble_s: float | None = None  # position of the last good frame before the first error
    first_gap_s: float | None = None  # position before the first run of missing frames
    read_error: str | None = None  # why reading stopped early, when it did
    last_error: str = ""  # the decoder's last complaint, for the report

    @property
    def errors(self) -> int:
        """Decode errors of the stream: rejected packets plus corrupt packets and frames."""
        return self.rejected_packets + self.corrupt_packets + self.corrupt_frames

    def undecoded(self, decoded: int) -> int:
        """Packets that gave no frame, counted as lost frames only where decode errors show damage:
        in a sound file a packet may legitimately make no frame (VP8's hidden frames, H.264 field pairs)."""
        return max(0, self.packets - self.discarded_packets - decoded) if self.errors else 0

    def trouble(self, message: str = "") -> None:
        if self.first_trouble_s is None:
            self.first_trouble_s = self.position_s
        if message:
            self.last_error = message

    def describe_errors(self) -> str:
        parts = [
            (self.rejected_packets, "packet(s) the decoder rejected"),
            (self.corrupt_packets, "packet(s) flagged corrupt"),
            (self.corrupt_frames, "frame(s) decoded with errors concealed"),
        ]
        return ", ".join(f"{n} {what}" for n, what in parts if n)


def declared_frames(container: Any, stream: Any) -> tuple[int | None, str]:
    """(frames the container declares or implies, how: "count", "duration" or "container"; see TOLERANCE)."""
    if stream.frames:
        return int(stream.frames), "count"
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    seconds, how = None, "duration"
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif _tag_seconds(stream.metadata.get("DURATION")) is not None:  # Matroska/WebM keep it as a tag
        seconds = _tag_seconds(stream.metadata.get("DURATION"))
    elif container.duration:
        seconds, how = container.duration / 1e6, "container"
    if seconds is None or rate <= 0:
        return None, how
    return int(round(seconds * rate)) or None, how


def _tag_seconds(text: str | None) -> float | None:
    """'00:00:04.000000000' -> 4.0; None for anything else."""
    try:
        h, m, sec = (text or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def loss_report(
    path: str, decoded: int, declared: int | None, how: str, health: DecodeHealth, cut_short: str | None = None
) -> str | None:
    """The stream's error when frames were lost, else None. `how` says what `declared` is (see
    `declared_frames`); `cut_short` why the file is known to end early although no count says so
    (an MPEG-TS file that stops inside a packet)."""
    expected = None if declared is None else declared - health.discarded_packets
    missing = 0 if expected is None else expected - decoded
    exact = how == "count"
    tolerance = 0 if exact else max(MIN_TOLERANCE_FRAMES, int(TOLERANCE[how] * (expected or 0)))
    if missing > tolerance:
        source = "the container declares" if exact else "the container's duration implies"
        what = f"decoded {decoded} of {'' if exact else '~'}{expected} frames {source}"
    elif health.undecoded(decoded):
        what = f"decoded {decoded} frames of {health.packets - health.discarded_packets} packets, {health.undecoded(decoded)} gave none"
    elif cut_short:
        what = f"decoded {decoded} frames, but {cut_short}"
    elif health.read_error:
        what = f"reading stopped after {decoded} frames"
    else:
        return None
    found = [t for t in (health.first_trouble_s, health.first_gap_s) if t is not None]
    where = min(found) if found else health.position_s
    detail = "; ".join(x for x in (health.read_error, health.describe_errors()) if x)
    return (
        f"{path}: {what}; the file is truncated or damaged after {where:.1f} s"
        + (f" ({detail})" if detail else "")
        + "; the decoded frames' results are kept, only an undamaged copy of the file has the rest"
    )


def ends_inside_packet(format_name: str, size: int) -> str | None:
    """An MPEG-TS file is a whole number of 188-byte packets (192 in M2TS): one that is not was cut."""
    if "mpegts" not in format_name or size % 188 == 0 or size % 192 == 0:
        return None
    return "the file ends inside a transport-stream packet (it was cut short)"
