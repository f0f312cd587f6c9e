"""Running promtool, Prometheus' own checker: present on the test machine, or a failed test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

INSTALL = "promtool is missing: install Debian's prometheus package (apt-get install -y prometheus)"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail the test (never skip it) when it is not installed."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(INSTALL, pytrace=False)
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def without_annotations(rules_text: str) -> str:
    """The rule groups with annotations dropped: alert unit tests then state labels only."""
    groups = yaml.safe_load(rules_text)
    for group in groups["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(groups, sort_keys=False)
