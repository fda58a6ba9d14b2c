"""MOTChallenge file reading/writing and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.contracts import Tracks

from pipeline.errors import TridentError
from trackers.mot_io import MotSequence, read_mot, tracks_to_sequence, write_mot


def test_write_then_read_round_trips_every_column(tmp_path: Path) -> None:
    seq = MotSequence(
        frames=np.array([1, 1, 3], np.int64),
        ids=np.array([2, 5, 2], np.int64),
        boxes=np.array([[10.5, 20.25, 30.0, 40.0], [0.0, 0.0, 1.0, 1.0], [11.125, 21.0, 30.0, 41.5]]),
        scores=np.array([0.9, 1.0, 0.12345]),
        classes=np.array([1, 3, 1], np.int64),
        visibility=np.array([1.0, 0.25, -1.0]),
    )
    write_mot(tmp_path / "sub" / "res.txt", seq)
    back = read_mot(tmp_path / "sub" / "res.txt")
    for name in ("frames", "ids", "classes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(seq, name))
    np.testing.assert_allclose(back.boxes, seq.boxes, atol=1e-3)
    np.testing.assert_allclose(back.scores, seq.scores, atol=1e-5)
    np.testing.assert_allclose(back.visibility, seq.visibility)


def test_reader_sorts_rows_and_fills_defaults_for_short_and_mot15_rows(tmp_path: Path) -> None:
    p = tmp_path / "det.txt"
    p.write_text("2,-1,5,5,10,10,0.8,-1,-1,-1\n\n1,3,0,0,4,4\n1,1,7,7,2,2,0.5,2,0.3\n")
    s = read_mot(p)
    assert s.frames.tolist() == [1, 1, 2] and s.ids.tolist() == [1, 3, -1]
    assert s.scores.tolist() == [0.5, 1.0, 0.8]
    assert s.classes.tolist() == [2, -1, -1]              # 10 columns: cols 8-10 are world coords
    assert s.visibility.tolist() == [0.3, -1.0, -1.0]
    assert s.last_frame == 2 and s.frame_slices() == {1: slice(0, 2), 2: slice(2, 3)}


def test_iter_frames_yields_empty_detections_for_frames_without_rows(tmp_path: Path) -> None:
    p = tmp_path / "det.txt"
    p.write_text("1,-1,0,0,10,20,0.9\n3,-1,5,5,10,10,0.7\n")
    frames = list(read_mot(p).iter_frames())
    assert [f for f, _ in frames] == [1, 2, 3]
    assert [len(d) for _, d in frames] == [1, 0, 1]
    np.testing.assert_allclose(frames[0][1].boxes, [[0, 0, 10, 20]])   # xywh -> xyxy


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,1,0,0,10,10\n1,2,0,0\n", r"det\.txt:2: expected 6 to 10"),
        ("1,1,0,0,10,10\n1,2,a,0,10,10\n", r"det\.txt:2: non-numeric"),
        ("0,1,0,0,10,10\n", r"det\.txt:1: frame must be an integer >= 1"),
        ("1.5,1,0,0,10,10\n", r"det\.txt:1: frame must be an integer"),
        ("1,1,0,0,-3,10\n", r"det\.txt:1: negative box size"),
        ("1,1,0,0,nan,10\n", r"det\.txt:1: NaN or inf"),
        ("1,2.5,0,0,1,1\n", r"det\.txt:1: id must be an integer"),
        ("1,2,0,0,1,1,1,1.5\n", r"det\.txt:1: class must be an integer"),
    ],
)
def test_malformed_rows_are_errors_naming_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "det.txt"
    p.write_text(content)
    with pytest.raises(TridentError, match=message):
        read_mot(p)


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TridentError, match="nope.txt: no such file"):
        read_mot(tmp_path / "nope.txt")
    with pytest.raises(TridentError, match="is a directory"):
        read_mot(tmp_path)


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "video.mp4"
    p.write_bytes(b"\x00\xff\xfe\x80" * 10)
    with pytest.raises(TridentError, match="not a text file"):
        read_mot(p)


def test_tracks_to_sequence_converts_xyxy_to_xywh_per_frame() -> None:
    t = Tracks(
        track_ids=np.array([4, 2], np.int64),
        boxes=np.array([[10, 20, 40, 60], [0, 0, 5, 5]], np.float32),
        scores=np.array([0.9, 0.8], np.float32),
        class_ids=np.array([1, 0], np.int32),
        det_index=np.array([0, -1], np.int32),
    )
    s = tracks_to_sequence([(7, t), (8, Tracks.empty())])
    assert s.frames.tolist() == [7, 7] and s.ids.tolist() == [2, 4]
    np.testing.assert_allclose(s.boxes, [[0, 0, 5, 5], [10, 20, 30, 40]])
    assert len(tracks_to_sequence([])) == 0
