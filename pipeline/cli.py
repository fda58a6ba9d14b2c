"""The `trident` command line.

Subcommands live with the package that owns them and are found through the
``trident.commands`` entry-point group (see pyproject.toml): each entry point
is a ``register(subparsers)`` function that adds one parser and sets its
``handler``. Registration imports only argparse-level code; a handler imports
torch, OpenCV or onnxruntime when it runs, so `trident --help` stays fast.

Bad input raises :class:`pipeline.errors.TridentError`; the CLI prints its
message as one line and exits 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from typing import Callable, Sequence

from pipeline import __version__
from pipeline.errors import TridentError

ENTRY_POINT_GROUP = "trident.commands"

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _command_entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def build_parser(registrars: Sequence[Callable[[argparse._SubParsersAction], None]] | None = None) -> argparse.ArgumentParser:
    """The full parser. ``registrars`` defaults to the installed entry points."""
    parser = argparse.ArgumentParser(
        prog="trident",
        description="Real-time detection, segmentation and tracking on video streams.",
    )
    parser.add_argument("--version", action="version", version=f"trident {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if registrars is None:
        registrars = []
        for ep in _command_entry_points():
            try:
                registrars.append(ep.load())
            except Exception as exc:  # a broken optional package must not take the whole CLI down
                print(f"trident: warning: command '{ep.name}' unavailable ({type(exc).__name__}: {exc})", file=sys.stderr)
    for register in registrars:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args) or 0)
    except TridentError as exc:
        from pipeline.sources.uri import redact  # a message may quote a source URL (a bad --set value, a config line)

        print(f"trident {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        from pipeline.errors import TORCH_MODULES, needs_torch

        if exc.name not in TORCH_MODULES:
            raise
        print(f"trident {args.command}: error: {needs_torch('this needs')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"trident {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
