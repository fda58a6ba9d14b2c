"""The data contracts reject wrong arrays at construction, with a message naming the field and the fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.contracts import Detections, Frame, FrameResult, SemanticMap, Tracks
from pipeline.masks import InstanceMasks

from pipeline.errors import ContractError, TridentError


def _dets(n: int = 2, h: int = 8, w: int = 10, masks: bool = True) -> Detections:
    boxes = np.array([[1, 1, 4, 5], [2, 0, 9, 7]], np.float32)[:n]
    m = np.zeros((n, h, w), bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        m[i, y0:y1, x0:x1] = True
    return Detections(boxes, np.linspace(0.9, 0.5, n).astype(np.float32), np.arange(n, dtype=np.int32), InstanceMasks.from_dense(m) if masks else None)


def _tracks(ids=(3, 7), det_index=(0, -1)) -> Tracks:
    m = len(ids)
    return Tracks(
        track_ids=np.asarray(ids, np.int64),
        boxes=np.tile(np.array([[0, 0, 2, 2]], np.float32), (m, 1)),
        scores=np.ones(m, np.float32),
        class_ids=np.zeros(m, np.int32),
        det_index=np.asarray(det_index, np.int32),
    )


def test_frame_accepts_bgr_uint8_and_reports_size():
    f = Frame("cam0", 0, 0.0, np.zeros((48, 64, 3), np.uint8), 1.0)
    assert (f.height, f.width) == (48, 64)


@pytest.mark.parametrize(
    "image, needle",
    [
        (np.zeros((48, 64), np.uint8), "shape [*,*,3]"),
        (np.zeros((48, 64, 4), np.uint8), "shape [*,*,3]"),
        (np.zeros((48, 64, 3), np.float32), "must be uint8, got float32"),
        ([[0]], "must be a numpy array"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
    ],
)
def test_frame_rejects_wrong_image(image, needle):
    with pytest.raises(ContractError, match=needle.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        Frame("cam0", 0, 0.0, image, 0.0)


def test_frame_rejects_empty_stream_id_and_negative_index():
    with pytest.raises(ContractError, match="stream_id"):
        Frame("", 0, 0.0, np.zeros((4, 4, 3), np.uint8), 0.0)
    with pytest.raises(ContractError, match="index must be >= 0"):
        Frame("a", -1, 0.0, np.zeros((4, 4, 3), np.uint8), 0.0)


def test_contract_errors_are_trident_errors_and_value_errors():
    assert issubclass(ContractError, TridentError) and issubclass(ContractError, ValueError)


def test_frozen_fields_cannot_be_reassigned():
    d = _dets()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.boxes = np.zeros((0, 4), np.float32)


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("boxes", np.zeros((2, 5), np.float32), r"boxes must have shape \[\*,4\], got \[2, 5\]"),
        ("boxes", np.zeros((2, 4), np.float64), "boxes must be float32, got float64"),
        ("scores", np.zeros((3,), np.float32), r"scores must have shape \[2\], got \[3\]"),
        ("class_ids", np.zeros((2,), np.int64), "class_ids must be int32, got int64"),
        ("masks", np.zeros((2, 8, 10), bool), r"masks must be pipeline.masks.InstanceMasks, got ndarray; wrap .* InstanceMasks.from_dense"),
        ("masks", InstanceMasks.from_dense(np.zeros((1, 8, 10), bool)), "masks has 1 masks but Detections.boxes has 2"),
    ],
)
def test_detections_reject_wrong_arrays(field, value, needle):
    kwargs = {f.name: getattr(_dets(), f.name) for f in dataclasses.fields(Detections)}
    kwargs[field] = value
    with pytest.raises(ContractError, match=needle):
        Detections(**kwargs)


def test_detections_reject_nan_and_inverted_boxes():
    d = _dets(masks=False)
    with pytest.raises(ContractError, match="1 row\\(s\\) with NaN"):
        Detections(np.array([[0, 0, 1, 1], [np.nan, 0, 1, 1]], np.float32), d.scores, d.class_ids)
    with pytest.raises(ContractError, match="x2<x1"):
        Detections(np.array([[5, 0, 1, 1], [0, 0, 1, 1]], np.float32), d.scores, d.class_ids)
    with pytest.raises(ContractError, match="scores has NaN"):
        Detections(d.boxes, np.array([0.5, np.nan], np.float32), d.class_ids)


def test_detections_select_keeps_rows_aligned():
    d = _dets()
    picked = d.select(np.array([False, True]))
    assert len(picked) == 1
    np.testing.assert_array_equal(picked.boxes[0], d.boxes[1])
    assert picked.class_ids[0] == 1 and len(picked.masks) == 1 and picked.masks.frame_hw == (8, 10)
    assert picked.masks.areas()[0] == d.masks.areas()[1] == 7 * 7
    np.testing.assert_array_equal(picked.masks.dense()[0], d.masks.paste(1))


def test_empty_detections_have_zero_rows_and_mask_shape():
    e = Detections.empty((8, 10))
    assert len(e) == 0 and len(e.masks) == 0 and e.masks.frame_hw == (8, 10) and e.masks_rle() == []


def test_masks_rle_decodes_to_the_same_pixels():
    d = _dets()
    rles = d.masks_rle()
    assert [r["size"] for r in rles] == [[8, 10], [8, 10]]
    assert isinstance(rles[0]["counts"], str)  # JSON-ready
    for rle, m in zip(rles, d.masks.dense()):
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert decoded.sum() == m.sum() == mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), m)


def test_masks_rle_without_masks_is_a_clear_error():
    with pytest.raises(ContractError, match="produced no instance masks"):
        _dets(masks=False).masks_rle()


def test_semantic_map_checks_labels_against_class_names():
    SemanticMap(np.array([[0, 2]], np.uint8), ("a", "b", "c"))
    with pytest.raises(ContractError, match="label 3 but only 3 class names"):
        SemanticMap(np.array([[0, 3]], np.uint8), ("a", "b", "c"))
    with pytest.raises(ContractError, match="labels must be uint8"):
        SemanticMap(np.zeros((2, 2), np.int64), ("a",))


def test_tracks_reject_duplicate_ids_and_bad_det_index():
    assert len(_tracks()) == 2 and len(Tracks.empty()) == 0
    with pytest.raises(ContractError, match="duplicates"):
        _tracks(ids=(3, 3))
    with pytest.raises(ContractError, match="det_index"):
        _tracks(det_index=(0, -2))
    with pytest.raises(ContractError, match="track_ids must be int64"):
        Tracks(np.array([1], np.int32), np.zeros((1, 4), np.float32), np.ones(1, np.float32), np.zeros(1, np.int32), np.zeros(1, np.int32))


def test_frame_result_links_are_consistent():
    frame = Frame("cam", 3, 0.1, np.zeros((8, 10, 3), np.uint8), 0.0)
    ok = FrameResult(frame, _dets(), SemanticMap(np.zeros((8, 10), np.uint8), ("bg",)), _tracks(), {"infer": 0.01})
    assert ok.tracks.det_index.tolist() == [0, -1] and ok.timings["infer"] == 0.01
    with pytest.raises(ContractError, match=r"masks are of a \(4, 5\) frame but the frame is \(8, 10\)"):
        FrameResult(frame, _dets(h=4, w=5))
    with pytest.raises(ContractError, match="semantic labels are"):
        FrameResult(frame, _dets(), SemanticMap(np.zeros((4, 5), np.uint8), ("bg",)))
    with pytest.raises(ContractError, match="det_index points past"):
        FrameResult(frame, _dets(), None, _tracks(det_index=(0, 2)))
