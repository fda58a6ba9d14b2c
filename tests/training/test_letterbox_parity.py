"""Training/evaluation letterbox = deployment letterbox: same pixels, labels on the same geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.preprocess import letterbox_batch
from pipeline.letterbox import Letterbox
from training.data import LetterboxTransform, Mosaic, Sample, boxes_from_masks, eval_transforms, train_transforms

INPUT_HW = (384, 640)
# (h, w) of frames that need resizing: exact halving, upscaling, and a third (where INTER_AREA and bilinear differ most)
RESIZED_FRAMES = [(720, 1280), (333, 500), (1080, 1920)]


def _noise(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    # noise, so any difference in interpolation shows in almost every pixel
    return np.random.default_rng(seed).integers(0, 256, (*hw, 3), np.uint8)


def _deployed(image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    batch, lbs = letterbox_batch([image], INPUT_HW)
    return batch[0].transpose(1, 2, 0), lbs[0]


@pytest.mark.parametrize("hw", RESIZED_FRAMES)
def test_eval_transform_gives_the_deployment_pixels_exactly(hw: tuple[int, int]) -> None:
    image = _noise(hw)
    out = eval_transforms(INPUT_HW)(Sample(image=image, image_id=0, orig_size=hw))
    expected, lb = _deployed(image)
    assert lb.scale != 1.0  # the frame really is resized
    assert out.image.shape == (*INPUT_HW, 3)
    assert np.array_equal(out.image, expected)
    assert out.scale == lb.scale and out.pad == (lb.pad_x, lb.pad_y)


def test_train_transform_starts_from_the_deployment_pixels() -> None:
    # with no zoom, shift, colour or flip left, training sees what deployment sees
    hw = (1080, 1920)
    image = _noise(hw, seed=1)
    tf = train_transforms(INPUT_HW, seed=0, scale=(1.0, 1.0), translate=0.0, flip_p=0.0)
    tf.transforms[2].gains[:] = 0  # HSVJitter off
    out = tf(Sample(image=image, image_id=0, orig_size=hw))
    assert np.array_equal(out.image, _deployed(image)[0])


def test_shrinking_is_bilinear_not_area_averaging() -> None:
    # the pixels training used before the letterbox was unified: INTER_AREA when shrinking
    image = _noise((1080, 1920))
    lb = Letterbox.fit(image.shape[:2], INPUT_HW)
    nh, nw = lb.resized_hw
    out = LetterboxTransform(INPUT_HW)(Sample(image=image, image_id=0, orig_size=(1080, 1920))).image
    window = out[int(lb.pad_y) : int(lb.pad_y) + nh, int(lb.pad_x) : int(lb.pad_x) + nw]
    area = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    assert (window != area).mean() > 0.9
    assert np.array_equal(window, cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))


def _scene(hw: tuple[int, int]) -> tuple[Sample, np.ndarray]:
    """Black frame with three white rectangles, their masks, boxes and a semantic map (class k+1 inside rectangle k)."""
    h, w = hw
    rects = np.array([[0.1, 0.2, 0.3, 0.5], [0.55, 0.05, 0.9, 0.35], [0.4, 0.6, 0.7, 0.95]]) * [w, h, w, h]
    rects = rects.round().astype(int)
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((len(rects), h, w), np.uint8)
    semantic = np.zeros((h, w), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(rects):
        image[y0:y1, x0:x1] = 255
        masks[k, y0:y1, x0:x1] = 1
        semantic[y0:y1, x0:x1] = k + 1
    boxes = rects.astype(np.float32)
    return Sample(image, 0, hw, boxes, np.arange(len(rects), dtype=np.int64), masks, semantic), boxes


@pytest.mark.parametrize("hw", RESIZED_FRAMES)
def test_transform_boxes_and_masks_land_where_letterbox_fit_puts_them(hw: tuple[int, int]) -> None:
    sample, boxes = _scene(hw)
    out = LetterboxTransform(INPUT_HW)(sample)
    lb = Letterbox.fit(hw, INPUT_HW)
    expected = lb.boxes_to_input(boxes)
    np.testing.assert_allclose(out.boxes, expected, atol=1e-4)
    # masks, semantic labels and the pixels themselves: within a pixel of the mapped box
    np.testing.assert_allclose(boxes_from_masks(out.masks), expected, atol=1.0)
    for k in range(len(boxes)):
        np.testing.assert_allclose(boxes_from_masks((out.semantic == k + 1)[None])[0], expected[k], atol=1.0)
        bright = out.image[..., 0] > 127
        inside = np.zeros_like(bright)
        x0, y0, x1, y1 = expected[k].round().astype(int)
        inside[y0:y1, x0:x1] = True
        # the white rectangle's pixels in the mapped box match its mask there, bar a one-pixel rim
        disagree = (bright & inside) != (out.masks[k].astype(bool) & inside)
        assert disagree.sum() <= 2 * ((x1 - x0) + (y1 - y0)) + 4
    # padding carries no label: masks 0, semantic 255 (ignore), image grey
    nh, nw = lb.resized_hw
    pad = np.ones(INPUT_HW, bool)
    pad[int(lb.pad_y) : int(lb.pad_y) + nh, int(lb.pad_x) : int(lb.pad_x) + nw] = False
    assert pad.any()
    assert (out.semantic[pad] == 255).all() and out.masks[:, pad].sum() == 0 and (out.image[pad] == 114).all()


def test_mosaic_tiles_are_resized_with_the_deployment_interpolation() -> None:
    # tile 0 is noise, the other three the pad grey: tile 0's window ends at the random centre
    image = _noise((1080, 1920), seed=2)
    grey = np.full((1080, 1920, 3), 114, np.uint8)
    samples = [Sample(image=im, image_id=i, orig_size=(1080, 1920)) for i, im in enumerate([image, grey, grey, grey])]
    out = Mosaic(np.random.default_rng(0), INPUT_HW)(samples)
    ys, xs = np.nonzero((out.image != 114).any(axis=2))
    yc, xc = ys.max() + 1, xs.max() + 1
    tile = cv2.resize(image, (320, 180), interpolation=cv2.INTER_LINEAR)  # a third, to fit a quarter of the input
    window = out.image[max(yc - 180, 0) : yc, max(xc - 320, 0) : xc]
    assert window.size > 0
    assert np.array_equal(window, tile[180 - window.shape[0] :, 320 - window.shape[1] :])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.parametrize("hw", RESIZED_FRAMES)
def test_cuda_letterbox_matches_the_cpu_one_within_a_grey_level(hw: tuple[int, int]) -> None:
    # training sees the CPU pixels; a CUDA pipeline must feed the network the same ones, bar fixed-point rounding
    if not _cuda():
        pytest.skip("needs a CUDA GPU")
    images = [_noise(hw, seed=3), _noise((hw[1], hw[0]), seed=4)]
    cpu, lbs_cpu = letterbox_batch(images, INPUT_HW, "cpu")
    gpu, lbs_gpu = letterbox_batch(images, INPUT_HW, "cuda")
    gpu = gpu.cpu().numpy()
    assert lbs_cpu == lbs_gpu and gpu.shape == cpu.shape
    assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 1
