"""Instance masks for a static camera: OpenCV background subtraction inside each teacher box.

A box-only teacher says where a person is; on a fixed camera the pixels that
differ from the learnt background inside that box say which pixels are the
person. MOG2 (OpenCV) models every pixel as a mixture of Gaussians and marks
shadows separately (value 127), which we drop so a person's shadow on the
floor does not join their mask.

A box with too little foreground (a person standing still long enough to
become background) or almost only foreground (a lighting change, the first
frames before the model has learnt anything) carries no usable motion
evidence. Then the track's last good mask is reused, resized to the new box
(the tracker's identities are what make this possible), and only an object
never seen moving gets an ellipse inscribed in its box. Each mask's source is
counted, so a dataset says how much of it is motion evidence.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MIN_FILL = 0.08  # below: the object is (nearly) background, e.g. standing still
MAX_FILL = 0.97  # above: the whole box changed (light, warm-up), not an outline
KEEP_COMPONENT = 0.2  # components smaller than this share of the box's largest are clutter, not the object

SOURCES = ("motion", "track", "ellipse")


def int_box(box: np.ndarray, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The integer box a crop occupies (floor/ceil, clipped), as engines.postprocess makes mask crops."""
    h, w = hw
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w)), int(np.clip(np.floor(box[1]), 0, h))
    x1, y1 = int(np.clip(np.ceil(box[2]), 0, w)), int(np.clip(np.ceil(box[3]), 0, h))
    return x0, y0, max(x1, x0), max(y1, y0)


def ellipse_mask(height: int, width: int) -> np.ndarray:
    """bool[h, w]: the ellipse inscribed in the box (closer to a person or a car than the box itself)."""
    if height == 0 or width == 0:
        return np.zeros((height, width), bool)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ry, rx = max(height / 2.0, 0.5), max(width / 2.0, 0.5)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if height == 0 or width == 0 or mask.size == 0:
        return np.zeros((height, width), bool)
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


class MotionMasker:
    """Feed every frame of one video in order (`observe`), ask for masks on the labelled ones (`masks`)."""

    def __init__(self, history: int = 500, var_threshold: float = 16.0) -> None:
        import cv2

        # history: frames the background remembers; longer keeps slow walkers as foreground, adapts slower to light
        self._sub = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold, detectShadows=True)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        self._last: dict[int, np.ndarray] = {}  # track id -> its last motion crop
        self.sources: Counter[str] = Counter()

    def observe(self, image: np.ndarray) -> np.ndarray:
        """Update the background with this frame; uint8[H, W] foreground (1) without shadows."""
        import cv2

        fg = (self._sub.apply(image) > 200).astype(np.uint8)  # 255 = foreground, 127 = shadow
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)  # specks of sensor noise
        return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._close)  # gaps where clothing matches the background

    def masks(self, foreground: np.ndarray, boxes: np.ndarray, track_ids: np.ndarray) -> tuple[list[np.ndarray], list[str]]:
        """One bool crop per box (in its `int_box`) and where it came from ('motion' | 'track' | 'ellipse')."""
        hw = foreground.shape[:2]
        crops, sources = [], []
        for box, tid in zip(boxes, track_ids.tolist()):
            x0, y0, x1, y1 = int_box(box, hw)
            crop, source = self._from_motion(foreground[y0:y1, x0:x1])
            if crop is not None and tid > 0:
                self._last[tid] = crop
            elif crop is None and tid in self._last:
                crop, source = resize_mask(self._last[tid], y1 - y0, x1 - x0), "track"
            elif crop is None:
                crop, source = ellipse_mask(y1 - y0, x1 - x0), "ellipse"
            crops.append(crop)
            sources.append(source)
            self.sources[source] += 1
        return crops, sources

    @staticmethod
    def _from_motion(patch: np.ndarray) -> tuple[np.ndarray | None, str]:
        import cv2

        if patch.size == 0:
            return None, "motion"
        fill = float(patch.mean())
        if not MIN_FILL <= fill <= MAX_FILL:
            return None, "motion"
        contours, _ = cv2.findContours(patch, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        areas = [cv2.contourArea(c) for c in contours]
        if not areas or max(areas) <= 0:
            return None, "motion"
        keep = [c for c, a in zip(contours, areas) if a >= KEEP_COMPONENT * max(areas)]
        solid = np.zeros_like(patch)
        cv2.drawContours(solid, keep, -1, 1, thickness=cv2.FILLED)  # filled outlines: holes inside a body are the body
        return solid.astype(bool), "motion"


def fill_empty(crops: list[np.ndarray], counter: Counter[str]) -> list[np.ndarray]:
    """Teacher masks with no pixels become box ellipses: an empty mask would make training drop the box too."""
    out = []
    for crop in crops:
        if crop.size and not crop.any():
            crop = ellipse_mask(*crop.shape)
            counter["ellipse"] += 1
        else:
            counter["teacher"] += 1
        out.append(crop)
    return out
