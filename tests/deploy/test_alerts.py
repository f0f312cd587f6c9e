"""Alert rules under test: promtool checks them and runs their unit tests (alerts.test.yml)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .project import DEPLOY
from .promtool import promtool, without_annotations

RULES = DEPLOY / "prometheus" / "eventfleet.rules.yml"
CASES = Path(__file__).with_name("alerts.test.yml")


def run_cases(tmp_path: Path, rules_text: str) -> tuple[int, str]:
    (tmp_path / "eventfleet.rules.yml").write_text(without_annotations(rules_text))
    shutil.copy(CASES, tmp_path / "alerts.test.yml")
    result = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_their_templates() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    code, output = run_cases(tmp_path, RULES.read_text())
    assert code == 0, output


def test_the_alert_tests_catch_a_rule_that_would_miss(tmp_path: Path) -> None:
    # An alert that waits for a second dead letter would miss the first one: the cases fail.
    broken = RULES.read_text().replace(
        "(increase(eventfleet_dead_lettered_total[10m])) > 0",
        "(increase(eventfleet_dead_lettered_total[10m])) > 1",
    )
    assert broken != RULES.read_text()
    code, output = run_cases(tmp_path, broken)
    assert code != 0 and "EventfleetDeadLetters" in output, output


def test_promtool_rejects_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(RULES.read_text().replace("{{ $labels.group }}", "{{ $labels.group "))
    assert promtool("check", "rules", str(broken)).returncode != 0
