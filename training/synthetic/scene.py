"""One synthetic video: a street-like layout, moving objects, lighting and noise.

`VideoScene(width, height, frames, rng).render()` yields `RenderedFrame`s with
the BGR image, the semantic labels and every visible instance (mask, box,
track id). Everything random comes from the one generator, so a seed fixes
the whole video.

What makes it hard enough to learn from: classes share the texture bank
(shape is the cue), objects enter and leave through the frame edges, pass in
front of each other (depth order follows the ground position), change speed
and depth (so scale), walk or roll, and cast shadows; static distractor blobs
sit on the ground; each video has its own sky, ground and road textures; light
drifts over time and a soft light spot wanders; sensor noise and motion blur
are added last. With a moving camera (`camera_motion`, see camera.py) the
scene is a larger world and each frame is the camera's warped view of it;
boxes, masks and labels are taken in the warped frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from training.synthetic import textures as tx
from training.synthetic.camera import CameraPath, world_size
from training.synthetic.shapes import STUFF_CLASSES, THINGS, ThingClass

BACKGROUND, GROUND, ROAD = (STUFF_CLASSES.index(n) for n in ("background", "ground", "road"))
THING_LABEL_OFFSET = len(STUFF_CLASSES)  # semantic label of thing class k is k + offset
MIN_VISIBLE_PIXELS = 24  # smaller slivers are not annotated: no detector can be asked to find 5 pixels


@dataclass
class _Object:
    track_id: int
    thing: ThingClass
    cls: int
    x: float  # box centre, pixels
    foot: float  # bottom of the box, pixels; sets depth and so scale
    vx: float  # pixels per frame
    vfoot: float
    size: float  # per-instance size jitter
    textures: list[np.ndarray]
    phase: float = 0.0
    phase_speed: float = 0.0
    bounce: float = 0.0  # ball hop height as a fraction of its size
    entered: bool = False


@dataclass
class Instance:
    """One visible object in one frame."""

    track_id: int
    cls: int  # index into THING_CLASSES
    box: tuple[float, float, float, float]  # xyxy of the visible mask, pixels, right/bottom exclusive
    mask: np.ndarray  # bool[H,W], visible pixels only
    area: int
    visibility: float  # visible pixels / drawn pixels (occluded or out of frame lowers it)


@dataclass
class RenderedFrame:
    index: int
    image: np.ndarray  # uint8[H,W,3] BGR
    semantic: np.ndarray  # uint8[H,W]
    instances: list[Instance] = field(default_factory=list)
    camera: np.ndarray | None = None  # 2x3 world -> frame affine; None for a fixed camera


class VideoScene:
    def __init__(self, width: int, height: int, frames: int, rng: np.random.Generator, fps: float = 30.0, max_objects: int = 8,
                 camera_motion: str = "none"):
        # self.w, self.h: the world the objects live in; out_w, out_h: the frames.
        # They differ only for a panning camera, whose view slides across a wider world.
        self.out_w, self.out_h = width, height
        self.w, self.h = world_size(camera_motion, width, height)
        self.frames, self.rng, self.fps = frames, rng, fps
        density = (self.w * self.h) / (width * height)  # same crowding per frame in a wider world
        self.max_objects = max(1, int(round(max_objects * density)))
        self._density = density
        self._next_id = 1
        self._layout()
        self._lighting()
        # Drawn last, so a fixed camera's videos are the same as before moving cameras existed.
        self.camera = CameraPath(camera_motion, width, height, frames, fps, rng) if camera_motion != "none" else None

    # --- static layout -------------------------------------------------------------------------
    def _layout(self) -> None:
        rng, w, h = self.rng, self.w, self.h
        self.horizon = int(h * rng.uniform(0.25, 0.45))
        self.road_top = int(self.horizon + (h - self.horizon) * rng.uniform(0.15, 0.4))
        self.road_bottom = int(min(h * 1.05, self.road_top + (h - self.horizon) * rng.uniform(0.35, 0.6)))
        img = np.empty((h, w, 3), np.float32)
        sem = np.full((h, w), GROUND, np.uint8)
        img[: self.horizon] = tx.sky_texture(rng, self.horizon, w)
        sem[: self.horizon] = BACKGROUND
        img[self.horizon :] = tx.ground_texture(rng, h - self.horizon, w)
        self._skyline(img, sem)
        rt, rb = self.road_top, min(self.road_bottom, h)
        asphalt = tx.ground_texture(rng, rb - rt, w)
        img[rt:rb] = 0.35 * asphalt + 0.65 * asphalt.mean(axis=2, keepdims=True) * rng.uniform(0.4, 0.9)
        sem[rt:rb] = ROAD
        lane_y = (rt + rb) // 2
        dash, gap = int(rng.integers(20, 60)), int(rng.integers(15, 50))
        paint = np.array([235, 235, 235] if rng.random() < 0.6 else [40, 200, 230], np.float32)
        thickness = max(1, (rb - rt) // 25)
        for x0 in range(int(rng.integers(0, dash + gap)) - dash, w, dash + gap):
            cv2.rectangle(img, (x0, lane_y - thickness), (x0 + dash, lane_y + thickness), paint.tolist(), -1)
        self._distractors(img)
        self.background, self.background_sem = img, sem

    def _skyline(self, img: np.ndarray, sem: np.ndarray) -> None:
        """Buildings or trees on the horizon: background class, but with edges and texture."""
        rng, w = self.rng, self.w
        x = int(rng.integers(-40, 0))
        trees = rng.random() < 0.5
        while x < w:
            bw = int(rng.integers(15, 70))
            bh = int(self.horizon * rng.uniform(0.1, 0.6))
            top = self.horizon - bh
            if trees:
                r = max(4, bw // 2)
                cv2.circle(img, (x + r, top + r), r, tx.random_colour(rng, sat=(0.3, 0.8), val=(0.2, 0.5)).tolist(), -1)
                cv2.rectangle(img, (x + r - 2, top + r), (x + r + 2, self.horizon), (30, 50, 70), -1)
            else:
                tex = tx.fill_from_texture(tx.random_texture(rng), bh, bw) * rng.uniform(0.4, 0.8)
                x0, x1 = max(x, 0), min(x + bw, w)
                if x1 > x0 and bh > 0:
                    img[top : self.horizon, x0:x1] = tex[:, x0 - x : x1 - x]
            x += bw + int(rng.integers(0, 30))
        sem[: self.horizon] = BACKGROUND

    def _distractors(self, img: np.ndarray) -> None:
        """Rocks, bushes and signs on the ground: textured like objects, labelled ground."""
        rng = self.rng
        for _ in range(int(rng.integers(3, 10))):
            cy = int(rng.uniform(self.horizon + 5, self.h))
            depth = (cy - self.horizon) / max(self.h - self.horizon, 1)
            r = max(3.0, self.h * 0.08 * (0.2 + depth) * rng.uniform(0.5, 1.5))
            cx = int(rng.uniform(0, self.w))
            n = int(rng.integers(5, 11))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = r * rng.uniform(0.5, 1.2, n)
            poly = np.stack([cx + rad * np.cos(ang), cy + 0.6 * rad * np.sin(ang)], 1).astype(np.int32)
            colour = tx.random_texture(rng).mean(axis=(0, 1))
            cv2.fillPoly(img, [poly], colour.tolist())

    def _lighting(self) -> None:
        rng = self.rng
        self.gain = rng.uniform(0.7, 1.2)
        self.gain_amp = rng.uniform(0.0, 0.25)
        self.gain_period = rng.uniform(60, 300)
        self.gain_phase = rng.uniform(0, 2 * np.pi)
        self.tint = rng.uniform(0.85, 1.15, 3).astype(np.float32)
        self.noise_sigma = rng.uniform(1.5, 8.0)
        self.spot_strength = rng.uniform(-0.25, 0.35)
        yy, xx = np.mgrid[-self.out_h : self.out_h, -self.out_w : self.out_w].astype(np.float32)
        radius = rng.uniform(0.3, 0.7) * max(self.out_w, self.out_h)
        self.spot = np.exp(-(xx**2 + yy**2) / (2 * radius**2))
        self.spot_path = rng.uniform(0, 1, 4)  # start and end of the spot centre, as fractions

    # --- objects -------------------------------------------------------------------------------
    def _spawn(self, inside: bool) -> _Object:
        rng = self.rng
        cls = int(rng.integers(0, len(THINGS)))
        thing = THINGS[cls]
        if thing.on_road:
            foot = rng.uniform(self.road_top + 0.3 * (self.road_bottom - self.road_top), self.road_bottom)
        else:
            foot = rng.uniform(self.horizon + 0.08 * (self.h - self.horizon), self.h * 1.08)
        speed = rng.uniform(*thing.speed) * self.out_w / self.fps
        direction = 1.0 if rng.random() < 0.5 else -1.0
        textures = []
        for part in range(1, thing.n_parts + 1):
            if part in thing.dark_parts:
                textures.append(tx.random_texture(rng, base=tx.random_colour(rng, val=(0.05, 0.2))) * 0.35)
            elif part in thing.glass_parts:
                textures.append(tx.random_texture(rng, base=np.array([150, 120, 90], np.float32)) * 0.5 + 60)
            else:
                textures.append(tx.random_texture(rng))
        obj = _Object(
            track_id=self._next_id,
            thing=thing,
            cls=cls,
            x=0.0,
            foot=float(foot),
            vx=direction * speed,
            vfoot=rng.normal(0.0, 0.15) * self.h / self.fps,
            size=rng.uniform(0.8, 1.25),
            textures=textures,
            phase=rng.uniform(0, 2 * np.pi),
            phase_speed=rng.uniform(0.15, 0.35),
            bounce=rng.uniform(0.0, 1.5) if thing.name == "ball" else 0.0,
        )
        self._next_id += 1
        bw, _ = self._box_size(obj)
        if inside:
            obj.x = rng.uniform(0, self.w)
        else:
            obj.x = -bw / 2 + 1 if direction > 0 else self.w + bw / 2 - 1
        return obj

    def _box_size(self, obj: _Object) -> tuple[float, float]:
        depth = (obj.foot - self.horizon) / max(self.h - self.horizon, 1)
        bh = obj.thing.height * self.h * (0.12 + 0.88 * max(depth, 0.02)) * obj.size
        return bh * obj.thing.aspect, bh

    def _step(self, obj: _Object) -> None:
        rng = self.rng
        obj.x += obj.vx
        obj.foot += obj.vfoot
        obj.phase += obj.phase_speed * (1 + abs(obj.vx) / 4)
        if rng.random() < 0.03:  # change of speed: overtaking, braking, a walker stopping
            lo, hi = obj.thing.speed
            speed = np.clip(abs(obj.vx) * rng.uniform(0.4, 1.8), lo * self.out_w / self.fps * 0.3, hi * self.out_w / self.fps)
            obj.vx = float(np.sign(obj.vx) * speed)
        obj.vfoot = 0.95 * obj.vfoot + rng.normal(0.0, 0.02) * self.h / self.fps
        lo = self.road_top + 0.3 * (self.road_bottom - self.road_top) if obj.thing.on_road else self.horizon + 0.05 * (self.h - self.horizon)
        hi = self.road_bottom if obj.thing.on_road else self.h * 1.1
        if not lo <= obj.foot <= hi:
            obj.foot = float(np.clip(obj.foot, lo, hi))
            obj.vfoot = -obj.vfoot

    def _gone(self, obj: _Object) -> bool:
        bw, _ = self._box_size(obj)
        left, right = obj.x - bw / 2, obj.x + bw / 2
        if right > 0 and left < self.w:
            obj.entered = True
        return (obj.vx > 0 and left >= self.w) or (obj.vx < 0 and right <= 0)

    # --- drawing -------------------------------------------------------------------------------
    def _sprite(self, obj: _Object, bw: int, bh: int) -> tuple[np.ndarray, np.ndarray]:
        """Colour patch float32[bh,bw,3] and part canvas uint8[bh,bw] (0 = not the object)."""
        parts = np.zeros((bh, bw), np.uint8)
        obj.thing.draw(parts, obj.phase)
        if obj.vx < 0:
            parts = np.ascontiguousarray(parts[:, ::-1])
        patch = np.zeros((bh, bw, 3), np.float32)
        for k, tex in enumerate(obj.textures, start=1):
            sel = parts == k
            if not sel.any():
                continue
            fill = tx.fill_from_texture(tex, bh, bw)
            if obj.thing.name == "ball":
                rot = cv2.getRotationMatrix2D((bw / 2, bh / 2), -np.degrees(obj.phase) * np.sign(obj.vx), 1.0)
                fill = cv2.warpAffine(fill, rot, (bw, bh), borderMode=cv2.BORDER_REFLECT)
            patch[sel] = fill[sel]
        shade = np.linspace(1.15, 0.75, bh, dtype=np.float32)[:, None, None]
        return patch * shade, parts

    def render(self) -> Iterator[RenderedFrame]:
        rng, w, h = self.rng, self.w, self.h
        n_start = int(rng.integers(2, int(round(self.max_objects / self._density)) // 2 + 2))
        if self._density != 1.0:
            n_start = max(1, int(round(n_start * self._density)))
        objects = [self._spawn(inside=True) for _ in range(n_start)]
        for t in range(self.frames):
            img = self.background.copy()
            sem = self.background_sem.copy()
            owner = np.full((h, w), -1, np.int32)  # index into `drawn` of the front-most object per pixel
            drawn: list[tuple[_Object, tuple[int, int, int, int], int]] = []
            for obj in sorted(objects, key=lambda o: o.foot):
                bwf, bhf = self._box_size(obj)
                bw, bh = max(2, int(round(bwf))), max(2, int(round(bhf)))
                hop = obj.bounce * bh * abs(np.sin(obj.phase * 0.5))
                x0, y0 = int(round(obj.x - bw / 2)), int(round(obj.foot - bh - hop))
                if x0 >= w or y0 >= h or x0 + bw <= 0 or y0 + bh <= 0:
                    continue
                patch, parts = self._sprite(obj, bw, bh)
                alpha = (parts > 0).astype(np.float32)
                blur = int(abs(obj.vx) * 0.8)
                if blur >= 3:  # motion blur along the direction of travel
                    pad = blur
                    patch = cv2.blur(cv2.copyMakeBorder(patch, 0, 0, pad, pad, cv2.BORDER_CONSTANT), (blur, 1))
                    alpha = cv2.blur(cv2.copyMakeBorder(alpha, 0, 0, pad, pad, cv2.BORDER_CONSTANT), (blur, 1))
                    parts = cv2.copyMakeBorder(parts, 0, 0, pad, pad, cv2.BORDER_CONSTANT)
                    bx0 = x0 - pad
                else:
                    bx0 = x0
                ph, pw = parts.shape
                cx0, cy0, cx1, cy1 = max(bx0, 0), max(y0, 0), min(bx0 + pw, w), min(y0 + ph, h)
                if cx1 <= cx0 or cy1 <= cy0:
                    continue
                sx, sy = cx0 - bx0, cy0 - y0
                # contact shadow on the ground, under the object
                self._shadow(img, obj.x, obj.foot, bw, bh)
                a = alpha[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0, None]
                region = img[cy0:cy1, cx0:cx1]
                region *= 1.0 - a
                region += a * patch[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0]
                hard = parts[sy : sy + cy1 - cy0, sx : sx + cx1 - cx0] > 0
                sem[cy0:cy1, cx0:cx1][hard] = THING_LABEL_OFFSET + obj.cls
                owner[cy0:cy1, cx0:cx1][hard] = len(drawn)
                drawn.append((obj, (cx0, cy0, cx1, cy1), int((parts > 0).sum())))
            view = None
            if self.camera is not None:
                view = self.camera.view(t)
                img, sem, owner, drawn = self._warp(view, img, sem, owner, drawn)
            instances = self._instances(owner, drawn)
            yield RenderedFrame(index=t, image=self._camera(img, t), semantic=sem, instances=instances, camera=view)
            for obj in objects:
                self._step(obj)
            objects = [o for o in objects if not self._gone(o)]
            if len(objects) < self.max_objects and rng.random() < 0.05:
                objects.append(self._spawn(inside=False))

    def _warp(self, A: np.ndarray, img: np.ndarray, sem: np.ndarray, owner: np.ndarray, drawn: list) -> tuple:
        """The camera's view of the world: image bilinear, labels and owners
        nearest (a label is never blended), each object's crop box carried
        through A, and its full area scaled by A's area change, so visibility
        still compares visible with drawn pixels in frame units."""
        size = (self.out_w, self.out_h)
        img = cv2.warpAffine(img, A, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        sem = cv2.warpAffine(sem, A, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        owner = cv2.warpAffine(owner.astype(np.float32), A, size, flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=-1).astype(np.int32)
        area_scale = abs(float(np.linalg.det(A[:, :2])))
        out = []
        for obj, (x0, y0, x1, y1), full_area in drawn:
            corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ A.T
            lo, hi = np.floor(corners.min(axis=0)) - 1, np.ceil(corners.max(axis=0)) + 1
            box = (int(max(lo[0], 0)), int(max(lo[1], 0)), int(min(hi[0], self.out_w)), int(min(hi[1], self.out_h)))
            out.append((obj, box, full_area * area_scale))
        return img, sem, owner, out

    def _shadow(self, img: np.ndarray, cx: float, foot: float, bw: int, bh: int) -> None:
        """Darken an ellipse of ground under the object (shadows are not part of the object)."""
        ry = max(1, bh // 14)
        x0, x1 = max(int(cx - bw / 2), 0), min(int(cx + bw / 2) + 1, self.w)
        y0, y1 = max(int(foot) - ry, 0), min(int(foot) + ry + 1, self.h)
        if x1 <= x0 or y1 <= y0:
            return
        local = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.ellipse(local, (int(cx) - x0, int(foot) - y0), (bw // 2, ry), 0, 0, 360, 0.45, -1, cv2.LINE_AA)
        img[y0:y1, x0:x1] *= (1.0 - local)[..., None]

    def _instances(self, owner: np.ndarray, drawn: list) -> list[Instance]:
        out = []
        for k, (obj, (x0, y0, x1, y1), full_area) in enumerate(drawn):
            if x1 <= x0 or y1 <= y0:
                continue  # out of the camera's view
            local = owner[y0:y1, x0:x1] == k
            area = int(local.sum())
            if area < MIN_VISIBLE_PIXELS:
                continue
            rows = np.flatnonzero(local.any(axis=1))
            cols = np.flatnonzero(local.any(axis=0))
            mask = np.zeros(owner.shape, bool)
            mask[y0:y1, x0:x1] = local
            box = (float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1))
            out.append(Instance(obj.track_id, obj.cls, box, mask, area, min(1.0, area / max(full_area, 1))))
        return out

    def _camera(self, img: np.ndarray, t: int) -> np.ndarray:
        """Lighting drift, a wandering light spot, colour tint, sensor noise."""
        gain = self.gain * (1.0 + self.gain_amp * np.sin(2 * np.pi * t / self.gain_period + self.gain_phase))
        f = t / max(self.frames - 1, 1)
        sx0, sy0, sx1, sy1 = self.spot_path
        w, h = self.out_w, self.out_h
        cx = int(((1 - f) * sx0 + f * sx1) * w)
        cy = int(((1 - f) * sy0 + f * sy1) * h)
        spot = self.spot[h - cy : 2 * h - cy, w - cx : 2 * w - cx]
        img *= (gain * (1.0 + self.spot_strength * spot))[..., None]
        img *= self.tint
        img += self.rng.standard_normal(img.shape, dtype=np.float32) * self.noise_sigma
        return np.clip(img, 0, 255).astype(np.uint8)


def sample_frames(frame_hw: tuple[int, int], count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` frames of one rendered street scene (BGR uint8 [H,W,3]), e.g. for INT8 calibration."""
    scene = VideoScene(frame_hw[1], frame_hw[0], count, np.random.default_rng(seed))
    return [f.image for f in scene.render()]
