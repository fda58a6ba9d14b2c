"""Config files into typed frozen dataclasses: YAML/TOML loading, `key.sub=value` overrides, strict keys.

Shared by the run, training and tracker configs so they all reject unknown
keys and wrong types the same way.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pipeline.errors import TridentError

__all__ = ["config_from_dict", "load_config_file", "apply_override"]


def _convert_field(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise TridentError(f"config key '{where}' must be a table/mapping, got {type(value).__name__}")
        return config_from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise TridentError(f"config key '{where}' must be a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert_field(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise TridentError(f"config key '{where}' must be {tp.__name__}, got {value!r}")
    return value


def config_from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build the frozen config dataclass `cls` from a mapping (YAML/TOML/CLI).

    Unknown keys and wrong scalar types are errors naming the dotted key, so a
    typo never falls back to a default silently. Nested dataclasses recurse.
    """
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            path = f"{where}.{key}" if where else key
            raise TridentError(f"unknown config key '{path}'; valid keys here: {', '.join(sorted(known))}")
    return cls(**{k: _convert_field(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()})


def load_config_file(path: Any) -> dict[str, Any]:
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise TridentError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise TridentError(f"{path}: TOML configs need Python >= 3.11; write the config as YAML") from None
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise TridentError(f"config file {path} does not parse: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TridentError(f"config file {path} must hold a mapping at the top level")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """`a.b.c=value` into nested dicts; the value is parsed as YAML (numbers, booleans, lists)."""
    import yaml

    if "=" not in assignment:
        raise TridentError(f"override {assignment!r} must look like key.sub=value")
    key, raw = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise TridentError(f"override {assignment!r} has an empty key")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise TridentError(f"override {assignment!r}: '{p}' is not a table")
    node[parts[-1]] = yaml.safe_load(raw)
