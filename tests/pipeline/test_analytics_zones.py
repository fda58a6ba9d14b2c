"""Polygon zones on hand-made tracks (enter, exit, occupancy, dwell over time gaps) and zones files that are wrong."""

from __future__ import annotations

import pytest

from pipeline.analytics import load_zones
from pipeline.errors import TridentError
from tests.pipeline.analytics_helpers import run, walk

LOBBY = {"polygons": [{"name": "lobby", "points": [[0, 0], [200, 0], [200, 200], [0, 200]], "dwell_s": 10}]}


def kinds(events):
    return [(e.kind, e.track_id) for e in events]


def test_enter_and_exit_follow_the_anchor_and_occupancy_counts_who_is_inside():
    frames = [[(1, 300, 100), (2, 100, 100)], [(1, 150, 100), (2, 100, 120)], [(1, 250, 100), (2, 100, 140)]]
    events, analytics = run(LOBBY, frames)
    assert kinds(events) == [("zone_enter", 2), ("zone_enter", 1), ("zone_exit", 1)]
    assert events[0].frame_index == 0  # first seen inside: it entered
    assert events[2].extra["reason"] == "left" and events[2].extra["dwell_s"] == pytest.approx(0.1)
    c = analytics.counts()["lobby"]
    assert (c["occupancy"], c["entered"], c["exited"]) == (1, 2, 1)
    assert c["by_class"]["person"] == {"entered": 2, "exited": 1, "dwell": 0, "occupancy": 1}


def test_a_coasting_track_neither_enters_nor_leaves():
    frames = [[(1, 300, 100)], [(1, 150, 100, False)], [(1, 120, 100, False)], [(1, 300, 100)]]
    events, _ = run(LOBBY, frames)
    assert events == []
    frames = [[(1, 100, 100)], [(1, 300, 100, False)], [(1, 400, 100, False)]]  # predicted out: still inside
    events, analytics = run(LOBBY, frames)
    assert kinds(events) == [("zone_enter", 1)]
    assert analytics.counts()["lobby"]["occupancy"] == 1


def test_a_track_that_ends_inside_exits_as_lost_and_occupancy_returns_to_zero():
    events, analytics = run(LOBBY, [[(1, 100, 100)], [(1, 110, 100, False)], []])
    assert kinds(events) == [("zone_enter", 1), ("zone_exit", 1)]
    assert events[1].extra["reason"] == "lost"
    assert analytics.counts()["lobby"]["occupancy"] == 0


def test_dwell_fires_once_after_dwell_s_on_the_stream_clock():
    frames = [[(1, 100, 100)] for _ in range(150)]  # 15 s at 10 fps
    events, analytics = run(LOBBY, frames)
    dwell = [e for e in events if e.kind == "dwell"]
    assert len(dwell) == 1 and dwell[0].frame_index == 100 and dwell[0].extra["dwell_s"] == pytest.approx(10.0)
    assert analytics.counts()["lobby"]["dwell"] == 1


def test_dwell_counts_time_across_a_gap_in_the_stream_not_frames():
    # 5 frames in the first 0.4 s, then a 12 s gap (a reconnect, dropped frames): dwell fires on the first frame after it
    pts = [0.0, 0.1, 0.2, 0.3, 0.4, 12.4, 12.5]
    events, _ = run(LOBBY, [[(1, 100, 100)] for _ in pts], pts=pts)
    dwell = [e for e in events if e.kind == "dwell"]
    assert [e.frame_index for e in dwell] == [5]
    assert dwell[0].extra["dwell_s"] == pytest.approx(12.4)


def test_dwell_restarts_with_each_visit_and_coasting_frames_do_not_fire_it():
    inside, outside = (1, 100, 100), (1, 300, 100)
    frames = [[inside]] * 50 + [[outside]] + [[inside]] * 20 + [[(1, 100, 100, False)]] * 90 + [[inside]]
    events, _ = run(LOBBY, frames)
    dwell = [e for e in events if e.kind == "dwell"]
    # 4.9 s on the first visit: none. The second entered at frame 51 (5.1 s); 10 s later (frame 151) it
    # coasts (frames 71-160), so it fires on its next observation, frame 161, at 11 s
    assert [e.frame_index for e in dwell] == [161]
    assert dwell[0].extra["dwell_s"] == pytest.approx(11.0)


def test_a_class_filter_ignores_other_classes_in_a_polygon():
    zones = {"polygons": [{"name": "bay", "points": [[0, 0], [200, 0], [200, 200], [0, 200]], "classes": ["car"]}]}
    events, analytics = run(zones, [[(1, 100, 100, True, 0), (2, 100, 150, True, 1)]])
    assert kinds(events) == [("zone_enter", 2)]
    assert analytics.counts()["bay"]["occupancy"] == 1


def test_lines_and_polygons_run_together_and_name_their_zone():
    zones = {**LOBBY, "lines": [{"name": "door", "points": [[200, 0], [200, 200]]}]}
    events, _ = run(zones, [[p] for p in walk(1, (260, 100), (140, 100), 4)])
    assert sorted((e.kind, e.zone) for e in events) == [("line_cross", "door"), ("zone_enter", "lobby")]


# --- zones files ---------------------------------------------------------------------------------


def _write(tmp_path, text, name="zones.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_issue_example_file_loads(tmp_path):
    path = _write(
        tmp_path,
        "lines:\n  - {name: door, points: [[320, 0], [320, 384]], classes: [person]}   # classes optional\n"
        "polygons:\n  - {name: lobby, points: [[0, 0], [200, 0], [200, 200], [0, 200]], dwell_s: 10}\n",
    )
    zones = load_zones(path)
    assert [z.name for z in zones.lines] == ["door"] and zones.lines[0].classes == ("person",)
    assert zones.polygons[0].dwell_s == 10.0 and zones.polygons[0].anchor == "bottom_center"


def test_a_toml_zones_file_loads(tmp_path):
    path = _write(tmp_path, '[[lines]]\nname = "door"\npoints = [[320, 0], [320, 384]]\n', "zones.toml")
    assert load_zones(path).lines[0].points == ((320.0, 0.0), (320.0, 384.0))


@pytest.mark.parametrize(
    "text, words",
    [
        ("lines:\n  - {name: door, points: [[320, 0]]}\n", ["lines[0].points", "at least 2 points"]),
        ("lines:\n  - {name: door, points: [[320, 0], [320]]}\n", ["lines[0].points[1]", "[x, y]"]),
        ("lines:\n  - {name: door, point: [[320, 0], [320, 9]]}\n", ["lines[0]", "unknown key 'point'", "points"]),
        ("polygons:\n  - {name: p, points: [[0, 0], [10, 10], [20, 20]]}\n", ["polygons[0]", "no area"]),
        ("polygons:\n  - {name: p, points: [[0, 0], [10, 0], [10, 10]], dwell_s: -1}\n", ["polygons[0].dwell_s", ">= 0"]),
        ("lines:\n  - {points: [[0, 0], [1, 1]]}\n", ["lines[0].name", "missing"]),
        ("lines:\n  - {name: a, points: [[0, 0], [1, 1]]}\npolygons:\n  - {name: a, points: [[0, 0], [9, 0], [9, 9]]}\n", ["'a'", "twice"]),
        ("lines:\n  - {name: a, points: [[0, 0], [1, 1]], anchor: feet}\n", ["lines[0].anchor", "bottom_center"]),
        ("zones:\n  - {name: a}\n", ["unknown key 'zones'", "lines"]),
        ("lines: []\n", ["no lines and no polygons"]),
        ("lines:\n  - {name: a, points: [[0, 0], [1, 1]]\n", ["does not parse", "line"]),
    ],
)
def test_a_wrong_zones_file_is_one_error_naming_the_file_and_the_key(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(TridentError) as err:
        load_zones(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message, message


def test_a_missing_zones_file_names_it(tmp_path):
    with pytest.raises(TridentError, match="zones file .*nope.yaml does not exist"):
        load_zones(tmp_path / "nope.yaml")


def test_a_class_the_model_does_not_have_is_refused_naming_the_classes():
    from pipeline.analytics import StreamAnalytics, zones_from_data

    zones = zones_from_data({"lines": [{"name": "door", "points": [[0, 0], [1, 1]], "classes": ["persn"]}]})
    with pytest.raises(TridentError, match=r"lines\[0\] \(door\)\.classes: 'persn' is not a class of the model; use some of: person, car"):
        StreamAnalytics("cam", zones, ("person", "car"))
