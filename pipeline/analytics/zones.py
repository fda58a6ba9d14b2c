"""Zones files: lines and polygons in a stream's frame pixels, loaded from YAML or TOML and checked once.

```yaml
lines:
  - {name: door, points: [[320, 0], [320, 384]], classes: [person]}   # classes optional
polygons:
  - {name: lobby, points: [[0, 0], [200, 0], [200, 200], [0, 200]], dwell_s: 10}
```

Every way a file can be wrong (unknown key, a point that is not [x, y], too few
points, a polygon with no area, a duplicate name, a class the model does not
have) is one TridentError naming the file, the key and the fix, raised before
the run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.analytics.geometry import ANCHORS, polygon_area
from pipeline.errors import TridentError

__all__ = ["LineZone", "PolygonZone", "Zones", "load_zones", "zones_from_data"]

EXAMPLE = "lines: [{name: door, points: [[320, 0], [320, 384]]}]"


@dataclass(frozen=True)
class LineZone:
    """A polyline (2+ points). `in` is a crossing that ends on the right of the line when walking it from
    its first point to its last (y down: for [[320, 0], [320, 384]], moving towards smaller x); swap the
    points to swap in and out."""

    name: str
    points: tuple[tuple[float, float], ...]
    classes: tuple[str, ...] = ()  # empty: every class
    anchor: str = "bottom_center"
    # after a counted crossing, a crossing back counts once the anchor has been this far from the
    # line (on either side): jitter of a box on the line is one crossing, not a stream of them.
    # Larger: fewer false recounts of people lingering on the line; smaller: quick real returns count.
    hysteresis_px: float = 8.0

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.points, np.float64)


@dataclass(frozen=True)
class PolygonZone:
    """A closed polygon (3+ points): enter, exit, occupancy, and a `dwell` event after `dwell_s` inside."""

    name: str
    points: tuple[tuple[float, float], ...]
    classes: tuple[str, ...] = ()
    anchor: str = "bottom_center"
    dwell_s: float = 0.0  # 0: no dwell events

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.points, np.float64)


@dataclass(frozen=True)
class Zones:
    lines: tuple[LineZone, ...] = ()
    polygons: tuple[PolygonZone, ...] = ()
    source: str = ""  # the file it came from, for messages

    def __bool__(self) -> bool:
        return bool(self.lines or self.polygons)

    def check_classes(self, class_names: tuple[str, ...]) -> None:
        """A class filter naming a class the model does not have would never match: refuse it."""
        for kind, zones in (("lines", self.lines), ("polygons", self.polygons)):
            for i, zone in enumerate(zones):
                unknown = [c for c in zone.classes if c not in class_names]
                if unknown:
                    raise TridentError(
                        f"{self._where()}{kind}[{i}] ({zone.name}).classes: {', '.join(map(repr, unknown))} "
                        f"is not a class of the model; use some of: {', '.join(class_names)}"
                    )

    def _where(self) -> str:
        return f"zones file {self.source}: " if self.source else "zones: "


def _points(value: Any, where: str, minimum: int, shape: str) -> tuple[tuple[float, float], ...]:
    hint = f"write {shape} as a list of [x, y] pairs in frame pixels, e.g. points: [[320, 0], [320, 384]]"
    if not isinstance(value, (list, tuple)) or len(value) < minimum:
        got = f"{len(value)} point(s)" if isinstance(value, (list, tuple)) else type(value).__name__
        raise TridentError(f"{where}.points needs at least {minimum} points, got {got}; {hint}")
    out = []
    for j, pt in enumerate(value):
        ok = isinstance(pt, (list, tuple)) and len(pt) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pt)
        if not ok or not all(np.isfinite(pt)):
            raise TridentError(f"{where}.points[{j}] must be [x, y] (two numbers), got {pt!r}; {hint}")
        out.append((float(pt[0]), float(pt[1])))
    return tuple(out)


def _zone(cls: type, data: Any, where: str, minimum: int, shape: str) -> Any:
    if not isinstance(data, dict):
        raise TridentError(f"{where} must be a mapping such as {{name: door, points: [[320, 0], [320, 384]]}}, got {type(data).__name__}")
    allowed = {"name", "points", "classes", "anchor"} | ({"hysteresis_px"} if cls is LineZone else {"dwell_s"})
    for key in data:
        if key not in allowed:
            raise TridentError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TridentError(f"{where}.name is missing or empty; give every zone a name (it names the zone in events and counts)")
    classes = data.get("classes", [])
    if isinstance(classes, str):
        classes = [classes]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise TridentError(f"{where}.classes must be a list of class names such as [person, car], got {classes!r}")
    anchor = data.get("anchor", "bottom_center")
    if anchor not in ANCHORS:
        raise TridentError(f"{where}.anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    kwargs: dict[str, Any] = {"name": name.strip(), "points": _points(data.get("points"), where, minimum, shape), "classes": tuple(classes), "anchor": anchor}
    for key in ("hysteresis_px", "dwell_s"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise TridentError(f"{where}.{key} must be a number >= 0 (seconds or pixels), got {value!r}")
            kwargs[key] = float(value)
    zone = cls(**kwargs)
    if cls is PolygonZone and polygon_area(zone.array) < 1.0:
        raise TridentError(f"{where} ({zone.name}) has no area (its points are on one line); give it 3+ corners around a region")
    if cls is LineZone and all(p == zone.points[0] for p in zone.points):
        raise TridentError(f"{where} ({zone.name}) has all its points at one place; a line needs two distinct points")
    return zone


def zones_from_data(data: Any, source: str = "") -> Zones:
    """Zones from a parsed mapping (a file, a run config's `zones:`, an HTTP request body)."""
    prefix = f"zones file {source}: " if source else "zones: "
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TridentError(f"{prefix}must be a mapping with `lines:` and/or `polygons:`, e.g. {EXAMPLE}")
    for key in data:
        if key not in ("lines", "polygons"):
            raise TridentError(f"{prefix}unknown key {key!r}; a zones file has `lines:` and `polygons:` only")
    parsed: dict[str, tuple] = {}
    for key, cls, minimum, shape in (("lines", LineZone, 2, "a line"), ("polygons", PolygonZone, 3, "a polygon")):
        items = data.get(key) or []
        if not isinstance(items, (list, tuple)):
            raise TridentError(f"{prefix}{key} must be a list of zones (each starting with '- '), got {type(items).__name__}")
        parsed[key] = tuple(_zone(cls, item, f"{prefix}{key}[{i}]", minimum, shape) for i, item in enumerate(items))
    names = [z.name for z in parsed["lines"] + parsed["polygons"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TridentError(f"{prefix}zone name(s) {', '.join(map(repr, dupes))} used twice; names must be unique (they key the counts)")
    zones = Zones(parsed["lines"], parsed["polygons"], source)
    if not zones:
        raise TridentError(f"{prefix}defines no lines and no polygons; add at least one, e.g. {EXAMPLE}")
    return zones


def load_zones(path: str | Path) -> Zones:
    """A zones file (.yaml/.yml/.toml); every unreadable or wrong file is one message naming it."""
    from pipeline.config_files import load_config_file

    try:
        data = load_config_file(path)
    except TridentError as exc:
        raise TridentError(str(exc).replace("config file", "zones file", 1)) from None
    return zones_from_data(data, str(path))
