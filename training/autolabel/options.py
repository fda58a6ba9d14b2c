"""What an autolabel run does, checked once before any frame is decoded.

Everything here is plain data so it can be written next to the work log: a
resumed run must be the same run, and `same_run` says so (or names the
setting that changed).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import TridentError

MASK_MODES = ("motion", "teacher", "none")


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start <= i < stop`` of each source (``stop`` None: to the end), every ``every``-th from ``start``."""

    start: int = 0
    stop: int | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if self.every < 1:
            raise TridentError(f"--every must be >= 1, got {self.every}")
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise TridentError(
                f"--frames {self.start}:{'' if self.stop is None else self.stop} is an empty range; "
                "give A:B with 0 <= A < B (or A: for everything from frame A)"
            )

    def wanted(self, index: int) -> bool:
        return index >= self.start and (self.stop is None or index < self.stop) and (index - self.start) % self.every == 0

    def done_after(self, index: int) -> bool:
        """No wanted frame comes after ``index``: decoding can stop."""
        return self.stop is not None and index + 1 >= self.stop


def parse_frames(text: str | None, every: int = 1) -> FrameRange:
    """'A:B' | 'A:' | ':B' | None -> FrameRange (0-based, B exclusive, like a Python slice)."""
    if text is None:
        return FrameRange(every=every)
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if not match:
        raise TridentError(f"--frames must look like A:B (0-based, B exclusive, e.g. 0:477), got {text!r}")
    start = int(match.group(1)) if match.group(1) else 0
    stop = int(match.group(2)) if match.group(2) else None
    return FrameRange(start, stop, every)


def parse_class_map(text: str | None) -> tuple[tuple[str, str], ...] | None:
    """'person,car=vehicle,truck=vehicle' -> (("person","person"), ("car","vehicle"), ("truck","vehicle")).

    Each item keeps one teacher class, optionally renamed; several teacher
    classes may share one dataset name (merged). None keeps every class.
    """
    if text is None:
        return None
    pairs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        teacher, _, name = item.partition("=")
        teacher, name = teacher.strip(), (name.strip() or teacher.strip())
        if not teacher:
            raise TridentError(f"--classes item {item!r} has no teacher class name; write NAME or TEACHER_NAME=DATASET_NAME")
        pairs.append((teacher, name))
    if not pairs:
        raise TridentError("--classes is empty; name at least one teacher class (e.g. --classes person,car)")
    return tuple(pairs)


def resolve_classes(teacher_names: tuple[str, ...], class_map: tuple[tuple[str, str], ...] | None) -> tuple[tuple[str, ...], list[int]]:
    """(dataset class names, lookup: teacher class id -> dataset class id or -1 to drop)."""
    if class_map is None:
        return tuple(teacher_names), list(range(len(teacher_names)))
    index = {n: i for i, n in enumerate(teacher_names)}
    unknown = [t for t, _ in class_map if t not in index]
    if unknown:
        raise TridentError(
            f"--classes names {', '.join(repr(u) for u in unknown)} which the teacher does not have; "
            f"its classes are: {', '.join(teacher_names)}"
        )
    names: list[str] = []
    lut = [-1] * len(teacher_names)
    for teacher, name in class_map:
        if name not in names:
            names.append(name)
        lut[index[teacher]] = names.index(name)
    return tuple(names), lut


@dataclass(frozen=True)
class AutolabelOptions:
    """One run's settings; `fingerprint` is what a resumed run must share with the interrupted one."""

    teacher: str
    sources: tuple[str, ...]
    class_map: tuple[tuple[str, str], ...] | None = None
    score: float = 0.35  # teacher score kept as a label; the NanoDet teacher keeps people and cars at 0.35 with few FPs
    frames: FrameRange = FrameRange()
    masks: str = "motion"
    val_fraction: float = 0.0  # the last share of each source's labelled frames forms the val split (held out in time)
    fps: float | None = None  # None: the source's own frame rate
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if not self.sources:
            raise TridentError("autolabel needs at least one --source video")
        if len(set(self.sources)) != len(self.sources):
            raise TridentError("a --source is given twice; name each video once")
        if not 0.0 < self.score < 1.0:
            raise TridentError(f"--score must be in (0, 1), got {self.score}")
        if self.masks not in MASK_MODES:
            raise TridentError(f"--masks must be one of {', '.join(MASK_MODES)}, got {self.masks!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise TridentError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            raise TridentError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    def fingerprint(self) -> dict[str, Any]:
        data = asdict(self)
        data["class_map"] = None if self.class_map is None else [list(p) for p in self.class_map]
        data["sources"] = list(self.sources)
        data["frames"] = asdict(self.frames)
        return data


def same_run(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """None when a work log belongs to this run, else the first setting that differs."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return key
    return None
