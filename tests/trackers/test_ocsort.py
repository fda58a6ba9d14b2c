"""What OC-SORT adds to ByteTrack: recovery by the last observation, the
re-update over a virtual path, and momentum in the first association."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import TridentError
from trackers import TrackerConfig, make_tracker
from trackers.kalman import cxcywh_to_xyxy, xyxy_to_cxcywh
from trackers.ocsort import OcSortTracker

FPS = 30.0


def _stop_while_hidden(tracker, dets, box) -> list[list[int]]:
    """Moves right 6 px a frame, is hidden for frames 20-29 and stops there (at
    x = 170, 6 px past its last sighting); IDs reported per frame."""
    out = []
    for f in range(45):
        visible = not (20 <= f < 30)
        x = 50 + 6 * min(f, 20)
        out.append(tracker.update(dets([box(x, 60)] if visible else []), f / FPS).track_ids.tolist())
    return out


@pytest.mark.parametrize(
    ("algorithm", "extra", "ids"),
    [
        ("sort", {}, [1, 2]),
        ("bytetrack", {}, [1, 2]),
        ("ocsort", {}, [1]),
        ("ocsort", {"observation_recovery": False}, [1, 2]),
    ],
)
def test_an_object_that_stopped_while_hidden_keeps_its_id_only_with_ocsort_recovery(algorithm, extra, ids, dets, box) -> None:
    # The prediction coasts on at 6 px/frame, ~60 px past the object, where a
    # 40-px box has no IoU with it; OC-SORT finds it by its last observed box.
    seen = _stop_while_hidden(make_tracker(TrackerConfig(algorithm=algorithm, **extra)), dets, box)
    assert sorted({i for frame in seen for i in frame}) == ids
    assert seen[-1] == [ids[-1]]
    if algorithm == "ocsort" and not extra:
        assert all(frame == [1] for k, frame in enumerate(seen) if not 20 <= k < 30)


def test_reupdate_rewinds_to_the_last_observation_and_walks_a_straight_virtual_path(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm="ocsort"))
    for f in range(10):
        tracker.update(dets([box(100 + 4 * f, 60)]), f / FPS)
    table = tracker.table
    x_obs, P_obs, last = table.x_obs[0].copy(), table.P_obs[0].copy(), table.last_box[0].copy()
    for f in range(10, 14):
        tracker.update(dets([]), f / FPS)                       # hidden: frames 10-13
    assert table.state.tolist() == [2]                           # Lost
    new = np.array(box(100 + 4 * 14 + 3, 60), dtype=np.float64)  # back at frame 14, 3 px further on
    tracker.update(dets([new.tolist()]), 14 / FPS)

    # The same by hand: 5 nominal steps from the last observation (frame 9),
    # virtual boxes at 1/5 .. 4/5 of the way, then the real one.
    kf = table.kf
    x, P = x_obs[None], P_obs[None]
    start, end = xyxy_to_cxcywh(last[None]), xyxy_to_cxcywh(new[None])
    for k in range(1, 5):
        x, P = kf.predict(x, P, 1.0)
        x, P = kf.update(x, P, cxcywh_to_xyxy(start + k / 5 * (end - start)))
    x, P = kf.update(*kf.predict(x, P, 1.0), new[None])
    np.testing.assert_allclose(table.x[0], x[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(table.P[0], P[0], rtol=1e-9, atol=1e-9)
    assert table.state.tolist() == [1] and table.ids.tolist() == [1]

    plain = make_tracker(TrackerConfig(algorithm="ocsort", observation_reupdate=False))
    for f in range(10):
        plain.update(dets([box(100 + 4 * f, 60)]), f / FPS)
    for f in range(10, 14):
        plain.update(dets([]), f / FPS)
    plain.update(dets([new.tolist()]), 14 / FPS)
    assert not np.allclose(plain.table.P[0], P[0], rtol=1e-3)   # one ordinary update is another filter


def test_reupdate_over_a_dropped_frame_gap_counts_real_time_steps(dets, box) -> None:
    # Hidden, then frames dropped: the virtual path has one step per nominal frame of real time.
    tracker = make_tracker(TrackerConfig(algorithm="ocsort"))
    for f in range(8):
        tracker.update(dets([box(100 + 5 * f, 60)]), f / FPS)
    tracker.update(dets([]), 8 / FPS)
    out = tracker.update(dets([box(100 + 5 * 20, 60)]), 20 / FPS)     # frames 9-19 never arrived
    assert out.track_ids.tolist() == [1]
    assert tracker.table.x[0, 4] == pytest.approx(5.0, abs=0.6)      # still 5 px a frame after 12 steps


def test_momentum_picks_the_detection_in_the_direction_of_travel(dets, box) -> None:
    # A track moving right at 5 px/frame; then two candidates: B (behind its
    # older observations, slightly higher IoU with the prediction) and A (ahead).
    picks = {}
    for weight in (0.2, 0.0):
        tracker = make_tracker(TrackerConfig(algorithm="ocsort", momentum_weight=weight, match_iou=0.1))
        for f in range(20):
            tracker.update(dets([box(100 + 5 * f, 60)]), f / FPS)
        predicted = 100 + 5 * 20
        a, b = box(predicted + 27, 60), box(predicted - 25, 60)
        out = tracker.update(dets([a, b]), 20 / FPS)
        picks[weight] = dict(zip(out.track_ids.tolist(), out.det_index.tolist()))[1]
    assert picks == {0.2: 0, 0.0: 1}


def test_momentum_term_is_plus_minus_half_the_weight_times_score_and_zero_without_a_direction(dets, box) -> None:
    tracker: OcSortTracker = make_tracker(TrackerConfig(algorithm="ocsort", momentum_weight=0.4))
    for f in range(5):
        tracker.update(dets([box(100 + 10 * f, 100)]), f / FPS)
    tracker.update(dets([box(100 + 10 * 5, 100), box(500, 500)]), 5 / FPS)   # the second one is newborn
    d = dets([box(400, 100), box(0, 100), box(130, 400)], scores=[0.5, 1.0, 0.8])
    m = tracker.momentum(np.array([0, 1]), np.arange(3), d)
    # Track 0 heads along +x: straight ahead +w/2*score, straight back -w/2*score.
    assert m[0, 0] == pytest.approx(0.2 * 0.5) and m[0, 1] == pytest.approx(-0.2 * 1.0)
    assert abs(m[0, 2]) < 0.2 * 0.8 * 0.5                                  # off to the side: in between
    assert m[1].tolist() == [0.0, 0.0, 0.0]                                 # one observation: no direction


def test_momentum_ignores_the_direction_of_a_track_that_moved_less_than_its_jitter(dets, box) -> None:
    # 1 px a frame on a 40x80 box: 3 px over the window, below 0.2 box sizes.
    terms = {}
    for floor in (0.2, 0.0):
        tracker = make_tracker(TrackerConfig(algorithm="ocsort", momentum_min_motion=floor))
        for f in range(6):
            tracker.update(dets([box(100 + f, 100)]), f / FPS)
        terms[floor] = tracker.momentum(np.array([0]), np.arange(1), dets([box(400, 100)]))[0, 0]
    assert terms[0.2] == 0.0 and terms[0.0] == pytest.approx(0.2 * 0.9 / 2)


def test_a_lost_track_takes_a_weak_box_under_ocsort_but_waits_for_a_strong_one_under_bytetrack(dets, box) -> None:
    # Missed for two frames behind something, then seen only weakly (score 0.2) for five.
    seen = {}
    for algorithm in ("bytetrack", "ocsort"):
        tracker = make_tracker(TrackerConfig(algorithm=algorithm, report_coasting_s=0.0))  # matched tracks only
        ids = []
        for f in range(20):
            if f in (10, 11):
                d = dets([])
            else:
                d = dets([box(50 + 3 * f, 60)], scores=[0.2 if 12 <= f < 17 else 0.9])
            ids.append(tracker.update(d, f / FPS).track_ids.tolist())
        seen[algorithm] = ids[12:17]
    assert seen["ocsort"] == [[1]] * 5
    assert seen["bytetrack"] == [[]] * 5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("momentum_weight", 1.5, "momentum_weight must be in \\[0, 1\\]"),
        ("momentum_frames", 0, "momentum_frames must be an integer >= 1"),
        ("momentum_frames", 2.5, "momentum_frames must be an integer >= 1"),
        ("recovery_iou", -0.1, "recovery_iou must be in \\[0, 1\\]"),
        ("observation_recovery", "yes", "observation_recovery must be true or false"),
        ("observation_reupdate", 1, "observation_reupdate must be true or false"),
        ("cmc", "orb", "cmc must be one of none, sparse, ecc, got 'orb'"),
    ],
)
def test_ocsort_and_cmc_fields_are_validated_with_a_message_naming_them(field, value, message) -> None:
    with pytest.raises(TridentError, match=message):
        TrackerConfig(algorithm="ocsort", **{field: value})


def test_ocsort_removed_rows_take_their_observations_with_them(dets, box) -> None:
    tracker = make_tracker(TrackerConfig(algorithm="ocsort", lost_buffer_s=0.1))
    for f in range(5):
        tracker.update(dets([box(10, 10), box(300, 10)]), f / FPS)
    for f in range(5, 12):
        tracker.update(dets([box(10 + 0 * f, 10)]), f / FPS)                 # the second one vanished
    t = tracker.table
    assert len(t) == 1 and t.obs.shape == (1, 4, 4) and len(t.n_obs) == len(t.x_obs) == len(t.P_obs) == 1
    np.testing.assert_allclose(t.obs[0, -1], box(10, 10))
