"""What SORT and ByteTrack promise: identities survive crossings, occlusions
within the buffer and time gaps; weak boxes help ByteTrack only; IDs and
det_index are right."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.contracts import Tracks
from pipeline.masks import InstanceMasks
from trackers import TrackerConfig, TrackState, make_tracker

FPS = 30.0
BOTH = ["sort", "bytetrack", "ocsort"]


def _ids_by_row(tracks: Tracks) -> dict[int, int]:
    """detection row -> track id, for matched tracks."""
    return {int(d): int(t) for t, d in zip(tracks.track_ids, tracks.det_index) if d >= 0}


@pytest.mark.parametrize("algorithm", BOTH)
def test_crossing_pair_keeps_identities(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm))
    right_id = left_id = None
    for f in range(60):
        a = box(20 + 5 * f, 100)            # moving right
        b = box(320 - 5 * f, 110)           # moving left, crosses a near frame 30
        # Detector order flips every frame so matching cannot lean on it.
        rows = [a, b] if f % 2 == 0 else [b, a]
        tracks = tracker.update(dets(rows), f / FPS)
        ids = _ids_by_row(tracks)
        a_row = 0 if f % 2 == 0 else 1
        if f == 5:
            right_id, left_id = ids[a_row], ids[1 - a_row]
        if f > 5 and a_row in ids and 1 - a_row in ids:
            assert (ids[a_row], ids[1 - a_row]) == (right_id, left_id), f"identities swapped at frame {f}"
    assert len(tracks) == 2 and {right_id, left_id} == set(tracks.track_ids.tolist())


@pytest.mark.parametrize("algorithm", BOTH)
def test_occluded_object_reappearing_within_buffer_keeps_its_id(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, lost_buffer_s=1.0, report_coasting_s=0.0))
    for f in range(40):
        visible = not (15 <= f < 30)        # hidden for 15 frames = 0.5 s
        tracks = tracker.update(dets([box(50 + 3 * f, 60)] if visible else []), f / FPS)
        if f == 14:
            first_id = int(tracks.track_ids[0])
        if not visible:
            assert len(tracks) == 0         # lost tracks are not reported (report_coasting_s=0)
    assert tracks.track_ids.tolist() == [first_id]
    assert tracks.det_index.tolist() == [0]


@pytest.mark.parametrize("algorithm", BOTH)
def test_object_hidden_longer_than_buffer_gets_a_new_id(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, lost_buffer_s=0.5))
    for f in range(50):
        visible = not (10 <= f < 40)        # hidden for 1 s > 0.5 s buffer
        tracks = tracker.update(dets([box(50 + 3 * f, 60)] if visible else []), f / FPS)
    assert tracks.track_ids.tolist() == [2]
    assert [r.track_id for r in tracker.removed_history] == [1]


def test_low_score_detections_extend_a_track_under_bytetrack_but_not_sort(dets, box) -> None:
    reported = {}
    for algorithm in BOTH:
        tracker = make_tracker(TrackerConfig(algorithm=algorithm, high_score=0.5, low_score=0.1, report_coasting_s=0.0))
        seen = []
        for f in range(20):
            score = 0.9 if f < 8 else 0.2   # partly occluded from frame 8
            tracks = tracker.update(dets([box(40 + 4 * f, 60)], scores=[score]), f / FPS)
            seen.append(tracks.track_ids.tolist())
        reported[algorithm] = seen
    assert all(ids == [1] for ids in reported["bytetrack"])
    assert all(ids == [1] for ids in reported["sort"][:8])
    assert all(ids == [] for ids in reported["sort"][8:])


@pytest.mark.parametrize("algorithm", BOTH)
def test_one_second_frame_gap_keeps_tracks(algorithm: str, dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm=algorithm, fps=FPS))
    speed = 4.0                                  # px per frame: 120 px over the gap, 3 box widths
    for f in range(20):
        tracks = tracker.update(dets([box(10 + speed * f, 50), box(400 - speed * f, 200)]), f / FPS)
    before = tracks.track_ids.tolist()
    f_after = 19 + 30                            # frame_time jumps by exactly 1 s
    tracks = tracker.update(dets([box(10 + speed * f_after, 50), box(400 - speed * f_after, 200)]), 19 / FPS + 1.0)
    assert tracks.track_ids.tolist() == before
    assert tracks.det_index.tolist() == [0, 1]


def test_two_tracker_instances_have_independent_id_counters(dets, box) -> None:
    a = make_tracker(TrackerConfig())
    b = make_tracker(TrackerConfig())
    for f in range(5):
        ta = a.update(dets([box(10 * k, 10) for k in range(0, 300, 60)]), f / FPS)   # 5 objects
        tb = b.update(dets([box(100, 300)]), f / FPS)
    assert ta.track_ids.tolist() == [1, 2, 3, 4, 5]
    # b's numbering does not continue after a's (the original ByteTrack's
    # class-level counter would have given it 6).
    assert tb.track_ids.tolist() == [1]
    alone = make_tracker(TrackerConfig())
    for f in range(5):
        t_alone = alone.update(dets([box(100, 300)]), f / FPS)
    assert t_alone.track_ids.tolist() == tb.track_ids.tolist()


def test_removed_history_stays_bounded(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(removed_history=5, lost_buffer_s=0.1))
    t = 0.0
    for k in range(20):                      # 20 objects, each lives 3 frames then vanishes
        for _ in range(3):
            tracker.update(dets([box(20 * k, 20)]), t)
            t += 1 / FPS
        for _ in range(5):
            tracker.update(dets([]), t)
            t += 1 / FPS
    assert len(tracker.removed_history) == 5
    assert [r.track_id for r in tracker.removed_history] == [16, 17, 18, 19, 20]
    assert len(tracker.table) == 0


@pytest.mark.parametrize("algorithm", BOTH)
def test_det_index_points_at_the_detection_each_track_took(algorithm: str, dets, box) -> None:
    rng = np.random.default_rng(3)
    tracker = make_tracker(TrackerConfig(algorithm=algorithm))
    objects = [(30.0, 40.0, 2.0), (200.0, 40.0, -1.0), (100.0, 250.0, 3.0)]
    id_of_object: dict[int, int] = {}
    for f in range(15):
        rows = [box(x + v * f, y) for x, y, v in objects] + [box(600, 10 + 30 * f, 10, 10)]  # + clutter
        scores = [0.9, 0.9, 0.9, 0.15]
        order = rng.permutation(len(rows))
        d = dets([rows[i] for i in order], scores=[scores[i] for i in order])
        tracks = tracker.update(d, f / FPS)
        for tid, row in zip(tracks.track_ids.tolist(), tracks.det_index.tolist()):
            obj = int(order[row])
            assert obj < 3, "a track took the clutter box"
            assert id_of_object.setdefault(obj, tid) == tid
            assert np.allclose(d.boxes[row], rows[obj])
    assert len(id_of_object) == 3


def test_track_birth_needs_min_hits_consecutive_matches(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(min_hits=3, confirm_on_first_frame=False))
    counts = [len(tracker.update(dets([box(10 + 2 * f, 10)]), f / FPS)) for f in range(5)]
    assert counts == [0, 0, 1, 1, 1]
    assert tracker.table.state.tolist() == [TrackState.CONFIRMED]


def test_objects_in_the_first_frame_are_reported_at_once(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(min_hits=3))
    assert len(tracker.update(dets([box(10, 10), box(200, 10)]), 0.0)) == 2
    # Later newcomers still wait for min_hits.
    assert tracker.update(dets([box(10, 10), box(200, 10), box(400, 10)]), 1 / FPS).track_ids.tolist() == [1, 2]


def test_tentative_track_missed_once_is_removed(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(confirm_on_first_frame=False))
    tracker.update(dets([box(10, 10)]), 0.0)
    tracker.update(dets([]), 1 / FPS)
    tracker.update(dets([box(10, 10)]), 2 / FPS)
    tracks = tracker.update(dets([box(10, 10)]), 3 / FPS)
    assert tracks.track_ids.tolist() == [2]


def test_class_aware_association_never_gives_a_track_another_class(dets, box) -> None:
    aware = make_tracker(TrackerConfig(class_aware=True, report_coasting_s=0.0))
    agnostic = make_tracker(TrackerConfig(class_aware=False, report_coasting_s=0.0))
    for tracker in (aware, agnostic):
        tracker.update(dets([box(10, 10)], classes=[0]), 0.0)
        tracker.update(dets([box(12, 10)], classes=[0]), 1 / FPS)
    ta = aware.update(dets([box(14, 10)], classes=[1]), 2 / FPS)
    tg = agnostic.update(dets([box(14, 10)], classes=[1]), 2 / FPS)
    assert ta.track_ids.tolist() == [] and len(aware.table) == 2   # old one lost, new one tentative
    assert tg.track_ids.tolist() == [1] and tg.class_ids.tolist() == [1]


def test_coasting_tracks_are_reported_with_det_index_minus_one_when_asked(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(report_coasting_s=0.1))
    for f in range(5):
        tracker.update(dets([box(10 + 3 * f, 10)]), f / FPS)
    coasting = [tracker.update(dets([]), f / FPS) for f in range(5, 10)]
    assert [t.det_index.tolist() for t in coasting] == [[-1], [-1], [-1], [], []]
    # The predicted box keeps moving at the learned velocity.
    assert coasting[2].boxes[0, 0] > coasting[0].boxes[0, 0] + 4


def test_reset_forgets_tracks_and_restarts_ids(dets, box) -> None:
    tracker = make_tracker(TrackerConfig())
    for f in range(3):
        tracker.update(dets([box(10, 10), box(100, 10)]), 5.0 + f / FPS)
    tracker.reset()
    assert len(tracker.table) == 0 and tracker.frame_count == 0
    # Time may start over after a reset.
    assert tracker.update(dets([box(300, 10)]), 0.0).track_ids.tolist() == [1]


def test_mask_iou_separates_overlapping_boxes_of_different_shape(dets) -> None:
    # Two objects share almost the same box but occupy opposite halves of it.
    h = w = 64
    left = np.zeros((h, w), bool)
    left[10:50, 10:20] = True
    right = np.zeros((h, w), bool)
    right[10:50, 40:50] = True
    b = [[10, 10, 50, 50], [10, 10, 50, 50]]
    tracker = make_tracker(TrackerConfig(mask_iou_weight=0.5))
    t0 = tracker.update(dets(b, masks=InstanceMasks.from_dense(np.stack([left, right]))), 0.0)
    ids = dict(zip(t0.det_index.tolist(), t0.track_ids.tolist()))
    for f in range(1, 6):
        t = tracker.update(dets(b, masks=InstanceMasks.from_dense(np.stack([right, left]))), f / FPS)  # rows swapped
        got = dict(zip(t.det_index.tolist(), t.track_ids.tolist()))
        assert got == {0: ids[1], 1: ids[0]}


def test_track_masks_are_held_box_locally(dets) -> None:
    h, w = 1080, 1920
    m = np.zeros((2, h, w), bool)
    m[0, 100:140, 200:230] = True
    m[1, 500:560, 900:920] = True
    tracker = make_tracker(TrackerConfig(mask_iou_weight=0.5))
    boxes = [[200, 100, 230, 140], [900, 500, 920, 560]]
    tracker.update(dets(boxes, masks=InstanceMasks.from_dense(m)), 0.0)
    held = tracker.table.masks
    assert held.frame_hw == (h, w) and len(held) == 2
    assert held.nbytes == 40 * 30 + 60 * 20 + held.boxes.nbytes  # 2.4 KB, not 2 x 2 MB
    np.testing.assert_array_equal(held.dense(), m)


@pytest.mark.parametrize("algorithm", BOTH)
def test_by_default_a_short_miss_is_bridged_by_the_prediction_and_a_long_one_is_not(algorithm: str, dets, box) -> None:
    # Detectors drop an object for a frame or two all the time; the default
    # reports the track's prediction through 0.1 s of misses (3 frames at 30 fps).
    tracker = make_tracker(TrackerConfig(algorithm=algorithm))
    for f in range(5):
        tracker.update(dets([box(10 + 3 * f, 10)]), f / FPS)
    missed = [tracker.update(dets([]), f / FPS) for f in range(5, 10)]
    assert [t.track_ids.tolist() for t in missed] == [[1], [1], [1], [], []]
    assert all(t.det_index.tolist() == [-1] for t in missed[:3])
    back = tracker.update(dets([box(10 + 3 * 10, 10)]), 10 / FPS)
    assert back.track_ids.tolist() == [1] and back.det_index.tolist() == [0]
