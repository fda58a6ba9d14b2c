"""Camera-motion compensation (CMC): how the camera moved between two frames.

When the camera pans, zooms or shakes, every object jumps in the image by the
camera's motion, and a Kalman prediction made in the previous frame's pixels
misses its object. `estimate(prev_grey, grey, boxes)` measures the frame-to-
frame transform from the static background; the tracker carries its tracks
through it before association (`tracker.update(dets, t, camera_motion=M)`),
so trackers/ never touches an image or OpenCV.

Methods (`TrackerConfig.cmc`):

- "sparse": corners (Shi-Tomasi) of the previous frame, followed into this
  one by pyramidal Lucas-Kanade optical flow, and a 4-degree-of-freedom
  similarity (shift, rotation, zoom) fitted with RANSAC. Runs on a grey image
  downscaled to `max_side` pixels, so it costs ~1-2 ms a frame at 640x384.
- "ecc": dense ECC alignment (Evangelidis & Psarakis 2008) of an even
  smaller image, Euclidean motion. No corners needed (fog, night, flat
  walls), but several times slower and it fails on large motions.

Foreground is masked out: corners inside any detection box (of either
frame) are not used, since a moving object's motion is not the camera's.

`estimate` returns a 2x3 float64 affine matrix mapping previous-frame pixels
to this frame's. When too little background can be followed (a blank frame,
everything covered) it returns the identity: the camera is assumed still,
which is what a tracker without CMC assumes anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import TridentError

if TYPE_CHECKING:
    from pipeline.contracts import Detections, Tracks

__all__ = ["METHODS", "estimate", "to_grey", "CameraMotion", "update_with_camera_motion"]

METHODS = ("sparse", "ecc")

# Longest side of the image the estimate is computed on. The flow of a pan is
# the same everywhere, so a small image loses little accuracy (sub-pixel LK
# at 320 px is ~1 px at 640) and saves most of the cost.
SPARSE_MAX_SIDE = 320
ECC_MAX_SIDE = 160
# Corners asked for; RANSAC needs a few dozen background inliers to be sure.
MAX_CORNERS = 150
MIN_INLIERS = 8
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def to_grey(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """BGR (or grey) uint8 image -> (grey image with its longest side <= max_side, scale applied)."""
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(1, int(round(image.shape[1] * scale))), max(1, int(round(image.shape[0] * scale))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def _box_mask(shape: tuple[int, int], boxes: np.ndarray, scale: float) -> np.ndarray:
    """uint8 mask, 255 where the background is (outside every box, grown by 2 px)."""
    mask = np.full(shape, 255, np.uint8)
    if len(boxes):
        b = np.asarray(boxes, dtype=np.float64) * scale
        x0 = np.clip(np.floor(b[:, 0]) - 2, 0, shape[1]).astype(int)
        y0 = np.clip(np.floor(b[:, 1]) - 2, 0, shape[0]).astype(int)
        x1 = np.clip(np.ceil(b[:, 2]) + 2, 0, shape[1]).astype(int)
        y1 = np.clip(np.ceil(b[:, 3]) + 2, 0, shape[0]).astype(int)
        for i in range(len(b)):
            mask[y0[i] : y1[i], x0[i] : x1[i]] = 0
    return mask


def _full_resolution(A: np.ndarray, scale: float) -> np.ndarray:
    """An affine measured on an image scaled by `scale`, in full-resolution pixels."""
    out = np.asarray(A, dtype=np.float64).copy()
    out[:, 2] /= scale
    return out


def estimate(
    prev_grey: np.ndarray,
    grey: np.ndarray,
    boxes: np.ndarray | None = None,
    prev_boxes: np.ndarray | None = None,
    method: str = "sparse",
    scale: float = 1.0,
) -> np.ndarray:
    """2x3 float64 affine taking `prev_grey`'s pixels to `grey`'s.

    Both images are the same-sized grey uint8 arrays; `scale` is how much
    they were shrunk from the frame (see `to_grey`), and `boxes` /
    `prev_boxes` are xyxy foreground boxes in *frame* pixels of this and of
    the previous frame, masked out of the estimate. The result is in frame
    pixels.
    """
    if method not in METHODS:
        raise TridentError(f"camera motion method must be one of {', '.join(METHODS)}, got {method!r}")
    if prev_grey.shape != grey.shape or grey.ndim != 2:
        raise TridentError(f"camera motion needs two grey images of one size, got {prev_grey.shape} and {grey.shape}")
    empty = np.zeros((0, 4))
    boxes = empty if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    prev_boxes = empty if prev_boxes is None else np.asarray(prev_boxes, dtype=np.float64).reshape(-1, 4)
    mask = _box_mask(grey.shape, np.concatenate([boxes, prev_boxes]), scale)
    A = _sparse(prev_grey, grey, mask) if method == "sparse" else _ecc(prev_grey, grey, mask)
    return _IDENTITY.copy() if A is None else _full_resolution(A, scale)


def _sparse(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    import cv2

    side = max(prev.shape)
    pts = cv2.goodFeaturesToTrack(prev, MAX_CORNERS, 0.01, max(3, side // 60), mask=mask, blockSize=3)
    if pts is None or len(pts) < MIN_INLIERS:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=3,
                                              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
    ok = status.ravel() == 1
    src, dst = pts.reshape(-1, 2)[ok], nxt.reshape(-1, 2)[ok]
    # A corner that flowed into a box of this frame may be an object's.
    x, y = np.rint(dst[:, 0]).astype(int), np.rint(dst[:, 1]).astype(int)
    inside = (x >= 0) & (y >= 0) & (x < mask.shape[1]) & (y < mask.shape[0])
    keep = inside.copy()
    keep[inside] = mask[y[inside], x[inside]] > 0
    src, dst = src[keep], dst[keep]
    if len(src) < MIN_INLIERS:
        return None
    A, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0,
                                             maxIters=500, confidence=0.99)
    if A is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return A


def _ecc(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    import cv2

    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        # findTransformECC finds the warp taking `cur` coordinates to `prev`'s
        # (template = cur, input = prev): invert it for prev -> cur.
        _, warp = cv2.findTransformECC(cur, prev, warp, cv2.MOTION_AFFINE, criteria, mask, 5)
    except cv2.error:
        return None
    return cv2.invertAffineTransform(warp.astype(np.float64))


class CameraMotion:
    """Per-stream state of the estimate: the previous frame's grey image and boxes.

    `step(image, boxes)` returns the motion since the previous call, or None
    on the first frame, after `reset()`, or when the frame size changed (a
    reconnect at another resolution: there is nothing to compare with).
    """

    def __init__(self, method: str = "sparse") -> None:
        if method not in METHODS:
            raise TridentError(f"camera motion method must be one of {', '.join(METHODS)}, got {method!r}")
        self.method = method
        self.max_side = SPARSE_MAX_SIDE if method == "sparse" else ECC_MAX_SIDE
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._prev_boxes = np.zeros((0, 4))
        self._prev_hw: tuple[int, int] | None = None

    def step(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray | None:
        grey, scale = to_grey(np.asarray(image), self.max_side)
        hw = tuple(image.shape[:2])
        M = None
        if self._prev is not None and self._prev_hw == hw:
            M = estimate(self._prev, grey, boxes, self._prev_boxes, self.method, scale)
        self._prev, self._prev_boxes, self._prev_hw = grey, np.asarray(boxes, dtype=np.float64).reshape(-1, 4), hw
        return M


def update_with_camera_motion(tracker: Any, detections: "Detections", frame: Any, motion: CameraMotion | None) -> "Tracks":
    """`tracker.update(detections, frame.pts)`, compensating the camera's motion first when the
    stream has an estimator (`motion`, one per stream, owned like the stream's tracker)."""
    if motion is None:
        return tracker.update(detections, frame.pts)
    if tracker.frame_count == 0 or getattr(frame, "discontinuity", False):
        motion.reset()  # a new stream or a restarted clock: the last picture is not the previous frame
    return tracker.update(detections, frame.pts, camera_motion=motion.step(frame.image, detections.boxes))
