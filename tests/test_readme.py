"""README's two Quick start commands are what users and CI run: keep them in step with .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_opens_with_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)  # one line each, copy-pasteable
    assert "trident " in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_install_and_test_command():
    install, _, test = _quick_start_commands()[1].rpartition(" && ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci
    assert test in ci
