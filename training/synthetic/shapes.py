"""The object classes of the synthetic dataset, drawn as labelled parts.

Each drawer paints part indices (1..n_parts, 0 = empty) into a uint8 canvas
of the object's box size, facing right. The caller fills each part with its
own texture, so class identity lives in the silhouette and the layout of the
parts (wheels under a body, a head over legs), never in a colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

THING_CLASSES: tuple[str, ...] = ("person", "car", "truck", "ball")
STUFF_CLASSES: tuple[str, ...] = ("background", "ground", "road")
SEMANTIC_CLASSES: tuple[str, ...] = STUFF_CLASSES + THING_CLASSES


def _pts(w: int, h: int, *xy: float) -> np.ndarray:
    """Polygon from relative coordinates (x0, y0, x1, y1, ...)."""
    arr = np.asarray(xy, np.float32).reshape(-1, 2) * np.array([w - 1, h - 1], np.float32)
    return np.round(arr).astype(np.int32)


def _circle(canvas: np.ndarray, cx: float, cy: float, r: float, part: int) -> None:
    h, w = canvas.shape
    cv2.circle(canvas, (int(round(cx * (w - 1))), int(round(cy * (h - 1)))), max(1, int(round(r))), part, -1, cv2.LINE_8)


def draw_person(canvas: np.ndarray, phase: float) -> None:
    """Head, torso, swinging arms and legs. Parts: 1 skin, 2 shirt, 3 trousers, 4 shoes."""
    h, w = canvas.shape
    swing = np.sin(phase)
    limb = max(1, int(round(0.2 * w)))
    # legs first so the torso overlaps the hips
    for sign in (1.0, -1.0):
        foot_x = 0.5 + sign * 0.32 * swing
        cv2.line(canvas, tuple(_pts(w, h, 0.5 + 0.1 * sign, 0.55)[0]), tuple(_pts(w, h, foot_x, 0.93)[0]), 3, limb)
        cv2.line(canvas, tuple(_pts(w, h, foot_x, 0.95)[0]), tuple(_pts(w, h, min(1.0, foot_x + 0.12), 0.97)[0]), 4, limb)
    cv2.fillPoly(canvas, [_pts(w, h, 0.2, 0.2, 0.8, 0.2, 0.85, 0.6, 0.15, 0.6)], 2)
    for sign in (1.0, -1.0):
        hand_x = 0.5 - sign * 0.35 * swing
        cv2.line(canvas, tuple(_pts(w, h, 0.5, 0.23)[0]), tuple(_pts(w, h, hand_x, 0.52)[0]), 2, max(1, limb * 2 // 3))
    _circle(canvas, 0.5, 0.095, min(0.09 * h, 0.42 * w), 1)


def draw_car(canvas: np.ndarray, phase: float) -> None:
    """Low body, cabin with two windows, two wheels. Parts: 1 body, 2 glass, 3 tyre, 4 hub."""
    h, w = canvas.shape
    cv2.fillPoly(canvas, [_pts(w, h, 0.0, 0.48, 0.06, 0.36, 0.94, 0.38, 1.0, 0.52, 1.0, 0.8, 0.0, 0.8)], 1)
    cv2.fillPoly(canvas, [_pts(w, h, 0.18, 0.4, 0.32, 0.03, 0.68, 0.03, 0.84, 0.4)], 1)
    cv2.fillPoly(canvas, [_pts(w, h, 0.25, 0.37, 0.35, 0.09, 0.48, 0.09, 0.48, 0.37)], 2)
    cv2.fillPoly(canvas, [_pts(w, h, 0.52, 0.37, 0.52, 0.09, 0.65, 0.09, 0.77, 0.37)], 2)
    for cx in (0.2, 0.8):
        _circle(canvas, cx, 0.79, 0.2 * h, 3)
        _circle(canvas, cx, 0.79, 0.09 * h, 4)


def draw_truck(canvas: np.ndarray, phase: float) -> None:
    """Tall cargo box, cab with window, chassis and three wheels. Parts: 1 cargo, 2 cab, 3 glass, 4 tyre, 5 hub."""
    h, w = canvas.shape
    cv2.fillPoly(canvas, [_pts(w, h, 0.0, 0.0, 0.7, 0.0, 0.7, 0.76, 0.0, 0.76)], 1)
    cv2.fillPoly(canvas, [_pts(w, h, 0.72, 0.22, 0.9, 0.22, 1.0, 0.46, 1.0, 0.78, 0.72, 0.78)], 2)
    cv2.fillPoly(canvas, [_pts(w, h, 0.79, 0.27, 0.89, 0.27, 0.96, 0.45, 0.79, 0.45)], 3)
    cv2.fillPoly(canvas, [_pts(w, h, 0.0, 0.74, 1.0, 0.74, 1.0, 0.83, 0.0, 0.83)], 4)
    for cx in (0.13, 0.42, 0.86):
        _circle(canvas, cx, 0.83, 0.16 * h, 4)
        _circle(canvas, cx, 0.83, 0.07 * h, 5)


def draw_ball(canvas: np.ndarray, phase: float) -> None:
    """A disc; its texture rotates with `phase`. Part: 1 surface."""
    h, w = canvas.shape
    _circle(canvas, 0.5, 0.5, 0.5 * min(h, w) - 0.5, 1)


@dataclass(frozen=True)
class ThingClass:
    name: str
    draw: Callable[[np.ndarray, float], None]
    n_parts: int
    aspect: float  # width / height of the box
    height: float  # box height at the bottom of the frame, as a fraction of frame height
    speed: tuple[float, float]  # horizontal speed range, fraction of frame width per second
    on_road: bool  # feet stay on the road band (vehicles) or anywhere on the ground
    dark_parts: tuple[int, ...] = ()  # tyres: near-black whatever the instance colour
    glass_parts: tuple[int, ...] = ()  # windows: grey-blue, reflective


THINGS: tuple[ThingClass, ...] = (
    ThingClass("person", draw_person, 4, 0.42, 0.50, (0.02, 0.08), on_road=False),
    ThingClass("car", draw_car, 4, 2.3, 0.30, (0.10, 0.35), on_road=True, dark_parts=(3,), glass_parts=(2,)),
    ThingClass("truck", draw_truck, 5, 1.9, 0.46, (0.07, 0.25), on_road=True, dark_parts=(4,), glass_parts=(3,)),
    ThingClass("ball", draw_ball, 1, 1.0, 0.14, (0.05, 0.25), on_road=False),
)
assert tuple(t.name for t in THINGS) == THING_CLASSES
