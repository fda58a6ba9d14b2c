"""Box-local instance masks: COCO RLE equal to pycocotools', round trips, row indexing, IoU, memory."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.errors import ContractError
from pipeline.masks import InstanceMasks


def _coco(dense: np.ndarray) -> list[dict]:
    """The reference: pycocotools' own encoder over full-frame masks."""
    if len(dense) == 0:
        return []
    encoded = mask_utils.encode(np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(v) for v in e["size"]], "counts": e["counts"].decode("ascii")} for e in encoded]


def _loose(dense: np.ndarray, rng: np.random.Generator) -> InstanceMasks:
    """Crops with False margins around the tight box (as the post-process makes them), clipped to the frame."""
    tight = InstanceMasks.from_dense(dense)
    n, h, w = dense.shape
    grow = rng.integers(0, 4, (n, 4))
    boxes = tight.boxes.astype(np.int64) + grow * np.array([-1, -1, 1, 1])
    boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.int32)
    crops = tuple(dense[i, y0:y1, x0:x1].copy() for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()))
    return InstanceMasks(crops, boxes, (h, w))


def _edge_cases(h: int, w: int) -> np.ndarray:
    m = np.zeros((12, h, w), bool)
    m[1] = True  # the whole frame
    m[2, :, 3:7] = True  # full-height: runs join across columns
    m[3, 0, 0] = True  # one pixel, first pixel of the frame
    m[4, h - 1, w - 1] = True  # one pixel, last pixel of the frame
    m[5, :, 0] = m[5, :, w - 1] = m[5, 0, :] = m[5, h - 1, :] = True  # touches every edge
    m[6, h - 3 :, 2:5] = True  # bottom edge, runs end on a column's last pixel
    m[6, :2, 5] = True  # ...and the next column starts on its first: one joined run
    m[7, :, w - 2 :] = True  # full-height at the right edge: ends on the frame's last pixel
    m[8, h // 2, :] = True  # one row across the frame
    m[9, :, w // 2] = True  # one column
    m[10, ::2, ::3] = True  # many short runs
    m[11, h // 3, w // 3] = True  # one pixel inside
    return m


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (7, 1), (5, 9), (48, 64), (31, 17)])
def test_rle_of_edge_cases_equals_pycocotools(hw):
    h, w = hw
    dense = _edge_cases(max(h, 6), max(w, 8)) if h * w > 1 else np.ones((2, 1, 1), bool) & np.array([[[True]], [[False]]])
    got = InstanceMasks.from_dense(dense).rle()
    assert got == _coco(dense)
    for r, m in zip(got, dense):  # and it decodes to the same pixels
        np.testing.assert_array_equal(mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}).astype(bool), m)


def test_rle_of_random_masks_with_tight_and_loose_boxes_equals_pycocotools():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        n = int(rng.integers(1, 6))
        dense = rng.random((n, h, w)) < rng.uniform(0.05, 0.95)
        dense[rng.random(n) < 0.2] = False  # some empty
        dense[rng.random(n) < 0.1] = True  # some full-frame
        want = _coco(dense)
        assert InstanceMasks.from_dense(dense).rle() == want
        assert _loose(dense, rng).rle() == want
        checked += n
    assert checked > 500


def test_rle_of_a_zero_size_crop_is_one_empty_run():
    masks = InstanceMasks.empty((6, 4), count=2)
    rles = masks.rle()
    assert rles == _coco(np.zeros((2, 6, 4), bool)) and rles[0] == rles[1]
    assert mask_utils.area({"size": [6, 4], "counts": rles[0]["counts"].encode()}) == 0
    assert InstanceMasks.empty((6, 4)).rle() == []


def test_dense_and_paste_round_trip_through_from_dense():
    rng = np.random.default_rng(1)
    dense = rng.random((5, 20, 30)) < 0.3
    dense[2] = False
    masks = InstanceMasks.from_dense(dense)
    np.testing.assert_array_equal(masks.dense(), dense)
    for i in range(5):
        np.testing.assert_array_equal(masks.paste(i), dense[i])
    assert masks.areas().tolist() == dense.reshape(5, -1).sum(1).tolist()
    assert masks.boxes[2].tolist() == [0, 0, 0, 0] and masks.crop(2).size == 0
    one = np.zeros((1, 20, 30), bool)
    one[0, 3:9, 4:6] = True
    tight = InstanceMasks.from_dense(one)
    assert tight.boxes.tolist() == [[4, 3, 6, 9]] and tight.crop(0).shape == (6, 2) and tight.crop(0).all()


def test_rows_follow_index_arrays_bool_masks_and_slices():
    dense = np.zeros((4, 10, 10), bool)
    for i in range(4):
        dense[i, i : i + 2, i : i + 3] = True
    masks = InstanceMasks.from_dense(dense)
    det_index = np.array([2, -1, 0, 3], np.int32)  # a coasting track has -1
    picked = masks[det_index[det_index >= 0]]
    assert len(picked) == 3 and picked.frame_hw == (10, 10)
    np.testing.assert_array_equal(picked.dense(), dense[[2, 0, 3]])
    np.testing.assert_array_equal(masks[np.array([False, True, False, True])].dense(), dense[[1, 3]])
    np.testing.assert_array_equal(masks[1:3].dense(), dense[1:3])
    assert len(masks[np.zeros(0, np.int64)]) == 0
    with pytest.raises(TypeError, match=r"crop\(i\)"):
        masks[0]
    with pytest.raises(ContractError, match=r"det_index\[det_index >= 0\]"):
        masks[det_index]  # -1 would silently be the last row


def test_concat_and_replace_keep_rows_aligned():
    dense = np.zeros((3, 8, 8), bool)
    dense[0, :2, :2] = dense[1, 4:, 4:] = dense[2, 2:5, 1] = True
    a, b = InstanceMasks.from_dense(dense[:2]), InstanceMasks.from_dense(dense[2:])
    np.testing.assert_array_equal(InstanceMasks.concat([a, b]).dense(), dense)
    swapped = a.replace(np.array([1]), b)
    np.testing.assert_array_equal(swapped.dense(), dense[[0, 2]])
    np.testing.assert_array_equal(a.dense(), dense[:2])  # the original is untouched
    with pytest.raises(ContractError, match="frame sizes"):
        InstanceMasks.concat([a, InstanceMasks.empty((9, 8), 1)])


def test_iou_equals_the_dense_computation_and_is_zero_for_boxes_apart():
    rng = np.random.default_rng(2)
    h, w = 40, 50
    a = np.zeros((6, h, w), bool)
    b = np.zeros((7, h, w), bool)
    for m in (*a, *b):
        x0, y0 = rng.integers(0, w - 5), rng.integers(0, h - 5)
        m[y0 : y0 + rng.integers(1, 20), x0 : x0 + rng.integers(1, 20)] = rng.random() < 0.9
        m &= rng.random((h, w)) < 0.8
    fa, fb = a.reshape(6, -1).astype(np.int64), b.reshape(7, -1).astype(np.int64)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    want = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    got = InstanceMasks.from_dense(a).iou(_loose(b, rng))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert (want == 0).any() and (want > 0).any()
    apart = np.zeros((2, 10, 10), bool)
    apart[0, :3, :3] = apart[1, 6:, 6:] = True
    m = InstanceMasks.from_dense(apart)
    np.testing.assert_array_equal(m.iou(m), [[1.0, 0.0], [0.0, 1.0]])
    assert m.iou(InstanceMasks.empty((10, 10))).shape == (2, 0)
    with pytest.raises(ContractError, match="frame size"):
        m.iou(InstanceMasks.empty((10, 11), 1))


def test_memory_grows_with_box_area_not_frame_area():
    h, w, n = 1080, 1920, 100
    crops = tuple(np.ones((60, 40), bool) for _ in range(n))
    boxes = np.tile(np.array([[100, 200, 140, 260]], np.int32), (n, 1))
    masks = InstanceMasks(crops, boxes, (h, w))
    assert masks.nbytes == n * 60 * 40 + boxes.nbytes  # 241 KB, against 207 MB dense
    assert masks.dense().nbytes == n * h * w
    assert "n=100" in repr(masks) and len(repr(masks)) < 100


@pytest.mark.parametrize(
    "crops, boxes, hw, needle",
    [
        ((np.ones((2, 3), bool),), np.array([[0, 0, 3, 3]], np.int32), (4, 4), r"crops\[0\] has shape \[2, 3\] but its box \[0, 0, 3, 3\] is 3x3"),
        ((np.ones((2, 3), np.uint8),), np.array([[0, 0, 3, 2]], np.int32), (4, 4), r"crops\[0\] must be a 2-D bool array, got uint8"),
        ((np.ones((2, 3), bool),), np.array([[0, 0, 3, 2]], np.int64), (4, 4), r"boxes must be int32\[1,4\] .* got int64\[1, 4\]"),
        ((np.ones((2, 3), bool),), np.array([[2, 0, 5, 2]], np.int32), (4, 4), r"boxes\[0\] = \[2, 0, 5, 2\] is not inside the 4x4 frame"),
        ([np.ones((2, 3), bool)], np.array([[0, 0, 3, 2]], np.int32), (4, 4), "crops must be a tuple"),
        ((), np.zeros((0, 4), np.int32), (0, 4), "frame_hw must be a tuple"),
        ((), np.zeros((1, 4), np.int32), (4, 4), r"boxes must be int32\[0,4\]"),
    ],
)
def test_bad_input_is_a_contract_error_naming_the_field(crops, boxes, hw, needle):
    with pytest.raises(ContractError, match=needle):
        InstanceMasks(crops, boxes, hw)


def test_from_dense_rejects_what_is_not_bool_n_h_w():
    with pytest.raises(ContractError, match="bool masks, got uint8"):
        InstanceMasks.from_dense(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(ContractError, match=r"bool\[N,H,W\] numpy array, got \[4, 4\]"):
        InstanceMasks.from_dense(np.zeros((4, 4), bool))


def test_annotator_tints_mask_pixels_only_and_jsonl_writes_their_rle(tmp_path):
    import json

    from pipeline.contracts import Detections, Frame, FrameResult
    from pipeline.draw import Annotator, DrawConfig
    from pipeline.sinks.files import JsonlSink

    dense = np.zeros((1, 30, 40), bool)
    dense[0, 18:28, 10:14] = True  # below the label, inside the box outline
    masks = InstanceMasks.from_dense(dense)
    dets = Detections(np.array([[8, 16, 20, 30]], np.float32), np.array([0.9], np.float32), np.zeros(1, np.int32), masks)
    result = FrameResult(Frame("cam", 0, 0.0, np.full((30, 40, 3), 100, np.uint8), 0.0), dets)
    drawn = Annotator(("thing",)).draw(result)
    unmasked = Annotator(("thing",), cfg=DrawConfig(mask_alpha=0.0)).draw(result)
    np.testing.assert_array_equal((drawn != unmasked).any(axis=2), dense[0])  # the tint covers the mask's pixels, no others
    from pipeline.draw import TRACK_COLOURS

    expected = 100 * (1 - DrawConfig().mask_alpha) + TRACK_COLOURS[0].astype(float) * DrawConfig().mask_alpha  # class 0's colour
    inner = drawn[19:27, 11:13].reshape(-1, 3).astype(float)  # mask pixels clear of the box outline
    assert np.abs(inner - expected).max() <= 1.0  # the blend itself, to rounding
    sink = JsonlSink(tmp_path / "out.jsonl", ("thing",))
    sink.write(result)
    sink.close()
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["objects"][0]["mask"] == _coco(dense)[0]
