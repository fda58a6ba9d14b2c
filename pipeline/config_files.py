"""Config files into typed frozen dataclasses: YAML/TOML loading, `key.sub=value` overrides, strict keys.

Shared by the run, training and tracker configs so they all reject unknown
keys and wrong types the same way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from pipeline.errors import TridentError

__all__ = ["config_from_dict", "load_config_file", "apply_override", "positive_int"]


def _describe(value: Any) -> str:
    """How a YAML/TOML value reads to the person who wrote it: true, "a string", 3.5."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


def _convert_field(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:
            return _convert_field(args[0], value, where)
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise TridentError(f"config key '{where}' must be a table/mapping, got {_describe(value)}")
        return config_from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            # YAML reads `sources: clip.mp4` as a string; iterating it would make one entry per character
            raise TridentError(f"config key '{where}' must be a list, got {_describe(value)}; write it as a list: [{value}]")
        if not isinstance(value, (list, tuple)):
            raise TridentError(f"config key '{where}' must be a list, got {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert_field(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise TridentError(f"config key '{where}' must be a list of {len(args)} values, got {len(value)}")
        return tuple(_convert_field(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value))) if args else tuple(value)
    if tp in (int, float) and isinstance(value, bool):  # bool is an int in Python, never in a config
        raise TridentError(f"config key '{where}' must be a number, got {_describe(value)}")
    if tp is float and isinstance(value, int):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        kind = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}[tp]
        raise TridentError(f"config key '{where}' must be {kind}, got {_describe(value)}")
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


def _parse_error(exc: Exception) -> str:
    """The parser's message with its line and column (YAML marks are 0-based, people count from 1)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_config_file(path: Any) -> dict[str, Any]:
    """A YAML (or .toml) file as a dict; every way it can be unreadable is one message naming the file."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise TridentError(f"config file {path} does not exist")
    if path.is_dir():
        raise TridentError(f"config file {path} is a directory; pass a .yaml or .toml file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TridentError(f"config file {path} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise TridentError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
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
    except TridentError:
        raise
    except Exception as exc:
        raise TridentError(f"config file {path} does not parse: {_parse_error(exc)}") from None
    if not isinstance(data, dict):
        raise TridentError(f"config file {path} must hold a mapping (key: value lines) at the top level, got {_describe(data)}")
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
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise TridentError(f"override {assignment!r}: the value does not parse as YAML ({_parse_error(exc)}); quote it or fix the brackets") from None


def positive_int(text: str) -> int:
    """argparse `type=` for counts and sizes: an int >= 1, else argparse's one-line usage error."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
