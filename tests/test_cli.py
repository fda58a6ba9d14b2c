"""The `trident` entry point: discovery of subcommands, version, one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import __version__
from pipeline.cli import build_parser, main
from pipeline.errors import TridentError

BIN = Path(sys.executable).parent


def test_installed_console_script_lists_registered_commands():
    out = subprocess.run([str(BIN / "trident"), "--help"], capture_output=True, text=True, check=True).stdout
    assert "synth" in out and "COMMAND" in out


def test_version_matches_the_distribution():
    out = subprocess.run([str(BIN / "trident"), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"trident {__version__}" and __version__ != "0.0.0+unknown"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: trident" in capsys.readouterr().out


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _register_failing(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boom")
    p.add_argument("--kind", default="user")

    def handler(args):
        if args.kind == "user":
            raise TridentError("the camera at rtsp://cam/ is unreachable; check the address")
        raise RuntimeError("a bug")

    p.set_defaults(handler=handler)


def test_user_errors_become_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    import pipeline.cli as cli

    monkeypatch.setattr(cli, "build_parser", lambda: build_parser([_register_failing]))
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "trident boom: error: the camera at rtsp://cam/ is unreachable; check the address\n"
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["boom", "--kind", "bug"])
