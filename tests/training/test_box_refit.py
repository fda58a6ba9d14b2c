"""Zoom/shift keeps a labelled box (data.boxes_from_masks=false) or refits it to its mask (the default)."""

from __future__ import annotations

import numpy as np

from training.data.sample import Sample
from training.data.transforms import affine


def _sample() -> Sample:
    masks = np.zeros((1, 100, 200), np.uint8)
    masks[0, 30:60, 50:70] = 1  # an approximate mask inside a larger labelled box
    return Sample(image=np.zeros((100, 200, 3), np.uint8), image_id=1, orig_size=(100, 200),
                  boxes=np.array([[40, 20, 80, 70]], np.float32), labels=np.array([0]), masks=masks)


def test_the_labelled_box_survives_zoom_and_shift_when_masks_are_approximate():
    out = affine(_sample(), 1.0, (5.0, 3.0), boxes_from_masks=False)
    np.testing.assert_allclose(out.boxes, [[45, 23, 85, 73]])


def test_by_default_boxes_are_refitted_to_their_masks():
    out = affine(_sample(), 1.0, (5.0, 3.0))
    np.testing.assert_allclose(out.boxes, [[55, 33, 75, 63]])
