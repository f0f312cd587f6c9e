"""README's two Quick start commands: CI runs exactly the test one, and neither hides its progress."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)


def test_the_quick_start_has_a_run_command_and_a_test_command() -> None:
    run, test = quick_start_commands()
    assert run.endswith("eventfleet dev --demo"), run
    assert test.endswith(".venv/bin/python -m tests"), test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = quick_start_commands()
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert script[-1] == test, (script[-1], test)


def test_no_quick_start_step_is_silent() -> None:
    """The install takes minutes on a loaded machine: pip must say what it is doing."""
    for command in quick_start_commands():
        for step in command.split("&&"):
            argv = step.split()
            assert "-q" not in argv and "--quiet" not in argv, step
            assert "--progress-bar" not in argv or "off" not in argv, step
