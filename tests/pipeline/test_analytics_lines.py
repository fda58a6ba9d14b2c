"""Line crossings on hand-made tracks: every angle, jitter, coasting, crossing back, class filters, polylines."""

from __future__ import annotations

import math

import pytest

from tests.pipeline.analytics_helpers import run, walk

DOOR = {"lines": [{"name": "door", "points": [[320, 0], [320, 384]]}]}


def crossings(events):
    return [(e.track_id, e.extra["direction"]) for e in events if e.kind == "line_cross"]


@pytest.mark.parametrize("angle", range(0, 360, 15))
def test_a_track_crossing_a_line_at_any_angle_is_counted_once_with_its_direction(angle):
    # a line through (300, 200) at `angle`, a track crossing it at 60 degrees to the line, both ways
    a = math.radians(angle)
    d = (math.cos(a), math.sin(a))
    zones = {"lines": [{"name": "l", "points": [[300 - 150 * d[0], 200 - 150 * d[1]], [300 + 150 * d[0], 200 + 150 * d[1]]]}]}
    m = (math.cos(a + math.radians(60)), math.sin(a + math.radians(60)))
    start, end = (300 - 80 * m[0], 200 - 80 * m[1]), (300 + 80 * m[0], 200 + 80 * m[1])
    # walker's right of the line (y down) is where cross(d, p) > 0; m points there, so this move is `in`
    assert d[0] * m[1] - d[1] * m[0] > 0
    events, analytics = run(zones, [[p] for p in walk(1, start, end, 9)])
    assert crossings(events) == [(1, "in")]
    events, _ = run(zones, [[p] for p in walk(2, end, start, 9)])
    assert crossings(events) == [(2, "out")]
    assert analytics.counts()["l"]["in"] == 1 and analytics.counts()["l"]["out"] == 0


def test_the_door_example_counts_right_to_left_as_in():
    events, analytics = run(DOOR, [[p] for p in walk(1, (400, 300), (200, 300), 5)])
    assert crossings(events) == [(1, "in")]
    assert analytics.counts()["door"] == {"type": "line", "in": 1, "out": 0, "by_class": {"person": {"in": 1, "out": 0}}}


def test_a_fast_track_that_jumps_over_the_line_between_two_frames_is_counted():
    events, _ = run(DOOR, [[(1, 500, 300)], [(1, 100, 300)]])
    assert crossings(events) == [(1, "in")]


def test_a_move_past_the_end_of_the_line_is_not_a_crossing():
    short = {"lines": [{"name": "door", "points": [[320, 0], [320, 100]]}]}
    events, _ = run(short, [[p] for p in walk(1, (400, 300), (200, 300), 5)])
    assert crossings(events) == []


def test_a_track_that_jitters_on_the_line_is_counted_once():
    xs = [340, 330, 321, 319, 321, 318, 322, 319, 321, 317, 300, 280, 260]  # wobbles across x=320 before walking on
    events, analytics = run(DOOR, [[(1, x, 300)] for x in xs])
    assert crossings(events) == [(1, "in")]
    assert analytics.counts()["door"]["out"] == 0


def test_a_track_that_stands_on_the_line_and_jitters_is_counted_once_not_per_wobble():
    xs = [330, 319, 321, 319, 321, 319, 321, 319, 321, 319]
    events, _ = run(DOOR, [[(1, x, 300)] for x in xs])
    assert crossings(events) == [(1, "in")]


def test_a_track_that_crosses_back_is_counted_again_each_way():
    path = walk(1, (400, 300), (250, 300), 6) + walk(1, (250, 300), (400, 300), 6)[1:] + walk(1, (400, 300), (250, 300), 6)[1:]
    events, analytics = run(DOOR, [[p] for p in path])
    assert crossings(events) == [(1, "in"), (1, "out"), (1, "in")]
    assert analytics.counts()["door"]["in"] == 2 and analytics.counts()["door"]["out"] == 1


def test_a_return_that_was_held_as_jitter_counts_once_the_track_is_clearly_back():
    # in at 318; back to 322 (held: it never got 8 px away), then on to 360: the return counts there
    xs = [330, 318, 322, 340, 360]
    events, _ = run(DOOR, [[(1, x, 300)] for x in xs])
    assert crossings(events) == [(1, "in"), (1, "out")]
    assert events[-1].frame_index == 3  # counted when it was 20 px clear of the line


def test_coasting_positions_never_trigger_a_crossing_and_the_move_spans_them():
    # observed at 400, coasting across the line (predicted), observed again at 200: one crossing, on re-observation
    frames = [[(1, 400, 300)], [(1, 340, 300, False)], [(1, 300, 300, False)], [(1, 260, 300, False)], [(1, 200, 300)]]
    events, _ = run(DOOR, frames)
    assert crossings(events) == [(1, "in")]
    assert events[0].frame_index == 4


def test_a_coasting_track_that_drifts_over_the_line_and_is_dropped_counts_nothing():
    frames = [[(1, 400, 300)], [(1, 330, 300)], [(1, 310, 300, False)], [(1, 290, 300, False)], []]
    events, analytics = run(DOOR, frames)
    assert crossings(events) == []
    assert analytics.counts()["door"]["in"] == 0


def test_each_track_is_counted_separately_and_an_ended_track_is_forgotten():
    frames = [[(1, 400, 300), (2, 410, 100)], [(1, 200, 300), (2, 200, 100)], [], [(1, 400, 300)], [(1, 200, 300)]]
    events, analytics = run(DOOR, frames)
    # id 1 ended at frame 2; the id seen again at frame 3 is a new object (the tracker never reuses ids), counted anew
    assert crossings(events) == [(1, "in"), (2, "in"), (1, "in")]
    assert analytics.counts()["door"]["in"] == 3


def test_a_class_filter_counts_only_its_classes_and_counts_are_kept_per_class():
    zones = {"lines": [{"name": "door", "points": [[320, 0], [320, 384]], "classes": ["car"]}], "polygons": []}
    frames = [[(1, 400, 300, True, 0), (2, 400, 200, True, 1)], [(1, 200, 300, True, 0), (2, 200, 200, True, 1)]]
    events, analytics = run(zones, frames)
    assert crossings(events) == [(2, "in")]
    assert events[0].extra["class"] == "car" and events[0].class_id == 1
    assert analytics.counts()["door"]["by_class"] == {"car": {"in": 1, "out": 0}}


def test_a_polyline_counts_a_crossing_of_any_of_its_segments_once_per_move():
    zigzag = {"lines": [{"name": "z", "points": [[100, 100], [300, 300], [500, 100]]}]}
    events, _ = run(zigzag, [[(1, 300, 150)], [(1, 300, 380)]])  # through the vertex region, downwards
    assert len(crossings(events)) == 1
    events, _ = run(zigzag, [[(1, 150, 250)], [(1, 250, 150)]])  # across the first segment only
    assert len(crossings(events)) == 1


def test_the_anchor_choice_decides_which_point_of_the_box_crosses():
    # boxes 40 px tall: bottom at 330 -> 300 crosses y=310; the centre (310 -> 280) starts on the line's side
    horizontal = {"lines": [{"name": "h", "points": [[0, 310], [640, 310]], "anchor": "bottom_center"}]}
    centre = {"lines": [{"name": "h", "points": [[0, 310], [640, 310]], "anchor": "center"}]}
    frames = [[(1, 300, 330)], [(1, 300, 300)]]
    assert len(crossings(run(horizontal, frames)[0])) == 1
    assert len(crossings(run(centre, frames)[0])) == 0


def test_a_crossing_event_carries_the_schema_fields():
    events, _ = run(DOOR, [[(7, 400, 300)], [(7, 200, 300)]], fps=10)
    record = events[0].to_dict()
    assert record["schema"] == "trident.event/1"
    assert (record["kind"], record["stream"], record["frame"], record["zone"], record["track_id"]) == ("line_cross", "cam", 1, "door", 7)
    assert record["pts"] == pytest.approx(0.1) and record["direction"] == "in" and record["class"] == "person"
    assert record["score"] == pytest.approx(0.9) and record["box"] == [190.0, 260.0, 210.0, 300.0]
    assert record["time"].startswith("2023-11-14T22:13:20.1") and record["time"].endswith("+00:00")
    assert len(record["id"]) == 32
