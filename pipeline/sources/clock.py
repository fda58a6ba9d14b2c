"""One increasing clock for a file whose own timestamps restart or leap.

A file's frame times can go backwards part way through: two MPEG-TS
recordings joined with `cat`, a recorder that restarted its encoder, a 33-bit
PTS wrap after 26.5 hours. They can also leap far forward (a broken muxer, a
recording that resumed much later). The tracker needs time that only increases
and steps by about one frame, so the source re-bases such a frame: it keeps a
per-source offset that places the frame one nominal frame interval after the
previous one, and reports the jump as a discontinuity. Everything downstream
(`Frame.pts`, the outputs' `pts`, the tracker) sees that one clock.

A jump is a step back (or a repeated time), or a step forward of more than
`jump_s` beyond where the next frame was expected; a smaller forward step is a
real gap (dropped frames) that the tracker predicts over, and is kept. One
frame is held back to tell a restart from a single stray timestamp (damaged
stretches of a file produce those): if the frame after the jump continues
from it, the clock restarted; if it continues from before the jump, the stray
frame is placed between its neighbours and nothing is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Discontinuity:
    """A re-based jump: the file's time went from `before_s` to `after_s`."""

    before_s: float
    after_s: float

    @property
    def backwards(self) -> bool:
        return self.after_s <= self.before_s


Placed = tuple[Any, float, "Discontinuity | None"]  # (the caller's item, pts, the jump it follows)


class SourceClock:
    """File times in, increasing `Frame.pts` out, one frame late at most; see the module docstring."""

    def __init__(self, interval_s: float, jump_s: float):
        self.interval_s = interval_s
        self.jump_s = jump_s
        self.offset = 0.0
        self.stray = 0  # single frames with an out-of-place time, placed between their neighbours
        self.first_gap_pts: float | None = None  # pts of the frame before the first run of missing frames
        self.gap_s = 2.5 * interval_s
        self._last_raw: float | None = None
        self._last_pts: float | None = None
        self._held: tuple[Any, float] | None = None

    def _follows(self, raw: float, before: float) -> bool:
        step = raw - before
        return 0 < step <= self.interval_s + self.jump_s

    def push(self, raw: float | None, item: Any) -> list[Placed]:
        """Frames ready to go, in order, after this one arrived. `raw` is the file's time in seconds,
        or None when the frame has none (then it follows the previous frame by one interval)."""
        if self._last_raw is None:
            return [self._place(item, 0.0 if raw is None else raw)]
        if raw is None:
            raw = (self._held[1] if self._held else self._last_raw) + self.interval_s
        if self._held is None:
            if self._follows(raw, self._last_raw):
                return [self._place(item, raw)]
            self._held = (item, raw)
            return []
        held, held_raw = self._held
        self._held = None
        if self._follows(raw, self._last_raw):
            # the held frame was a stray (or a repeated time): its neighbours agree, it goes between them
            self.stray += 1
            nxt = raw + self.offset
            out = [(held, (self._last_pts + nxt) / 2, None)]
            return out + [self._place(item, raw)]
        out = [self._jump(held, held_raw)]
        return out + self.push(raw, item)

    def flush(self) -> list[Placed]:
        """The frame still held at the end of the file, if any (placed one interval on, as a stray)."""
        if self._held is None:
            return []
        (held, _), self._held = self._held, None
        self.stray += 1
        pts = self._last_pts + self.interval_s
        self._last_pts = pts
        return [(held, pts, None)]

    def _jump(self, item: Any, raw: float) -> Placed:
        found = Discontinuity(self._last_raw, raw)
        self.offset = self._last_pts + self.interval_s - raw
        item, pts, _ = self._place(item, raw, gap=False)
        return item, pts, found

    def _place(self, item: Any, raw: float, gap: bool = True) -> Placed:
        if gap and self._last_raw is not None and self.first_gap_pts is None and raw - self._last_raw > self.gap_s:
            self.first_gap_pts = self._last_pts
        pts = raw + self.offset
        self._last_raw, self._last_pts = raw, pts
        return item, pts, None
