"""Zones drawn on the annotated picture: lines with their in/out counts, polygons with their occupancy.

An `Annotator` overlay (see pipeline/draw.py): called with the picture it
drew and the frame's result, whose `counts` are the stream's counts after
that frame, so the numbers on the video change on the frame the event
happened. A zone flashes (thicker) on a frame with one of its events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.analytics.zones import Zones
from pipeline.contracts import FrameResult

LINE_COLOUR = (0, 220, 255)  # BGR amber
POLYGON_COLOUR = (255, 160, 0)  # BGR azure
TEXT_BG = (0, 0, 0)


def _label(image: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int]) -> None:
    import cv2

    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    x = int(min(max(org[0], 0), max(image.shape[1] - w - 2, 0)))
    y = int(min(max(org[1], h + 2), image.shape[0] - base - 1))
    cv2.rectangle(image, (x - 1, y - h - 2), (x + w + 1, y + base), TEXT_BG, -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


class ZoneOverlay:
    def __init__(self, zones: Zones):
        self.zones = zones
        self._lines = [(z.name, np.round(z.array).astype(np.int32)) for z in zones.lines]
        self._polygons = [(z.name, np.round(z.array).astype(np.int32)) for z in zones.polygons]

    def __call__(self, image: np.ndarray, result: FrameResult) -> None:
        import cv2

        counts = result.counts or {}
        active = {e.zone for e in result.events}
        for name, pts in self._polygons:
            cv2.polylines(image, [pts], True, POLYGON_COLOUR, 3 if name in active else 1, cv2.LINE_AA)
            c = counts.get(name, {})
            _label(image, f"{name}: {c.get('occupancy', 0)} in zone, {c.get('entered', 0)} entered", tuple(pts.min(axis=0) + (2, 14)), POLYGON_COLOUR)
        for name, pts in self._lines:
            cv2.polylines(image, [pts], False, LINE_COLOUR, 4 if name in active else 2, cv2.LINE_AA)
            c = counts.get(name, {})
            mid = pts[len(pts) // 2 - 1 : len(pts) // 2 + 1].mean(axis=0).astype(int)
            _label(image, f"{name}: in {c.get('in', 0)} out {c.get('out', 0)}", (int(mid[0]) + 4, int(mid[1])), LINE_COLOUR)


def zone_annotator(annotator: Any, zones: Zones) -> Any:
    """The stream's Annotator with its zones drawn on top of each picture (after boxes and trails)."""
    overlay = ZoneOverlay(zones)
    draw = annotator.draw

    def draw_with_zones(result: FrameResult) -> np.ndarray:
        image = draw(result)
        overlay(image, result)
        return image

    annotator.draw = draw_with_zones
    return annotator
