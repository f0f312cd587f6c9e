"""Every alert carries a runbook_url, and it leads to its runbook: the runbook page of the
published documentation site (mkdocs' site_url), at an anchor a heading of the page makes."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from .kustomize import render
from .monitoring import runbook_problems
from .project import DEPLOY, K8S, REPO

RULES = DEPLOY / "prometheus" / "eventfleet.rules.yml"
RUNBOOKS = (REPO / "docs" / "operations" / "runbooks.md").read_text()


def site_url() -> str:
    """mkdocs.yml's site_url (the file holds python tags a safe loader refuses: read the line)."""
    found = re.search(r"^site_url: (\S+)$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)
    assert found, "mkdocs.yml names no site_url: the runbook links need the site's address"
    return found.group(1)


def groups() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return loaded


def test_every_alert_links_its_own_runbook() -> None:
    assert runbook_problems(groups(), RUNBOOKS, site_url()) == []
    for rule in (r for g in groups() for r in g["rules"] if "alert" in r):
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
    alerts = [r for g in groups() for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 16


def test_the_prometheus_rule_object_carries_the_same_links() -> None:
    rule = next(o for o in render(K8S / "base") if o["kind"] == "PrometheusRule")
    assert runbook_problems(rule["spec"]["groups"], RUNBOOKS, site_url()) == []


def _rule(doc: list[dict[str, Any]], alert: str) -> dict[str, Any]:
    return next(r for g in doc for r in g["rules"] if r.get("alert") == alert)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: _rule(d, "EventfleetDeadLetters")["annotations"].pop("runbook_url"),
            "alert EventfleetDeadLetters: needs annotations.runbook_url",
        ),
        (
            lambda d: _rule(d, "EventfleetLagStale")["annotations"].update(
                runbook_url="https://eventfleet.github.io/eventfleet/operations/runbooks/#lag-stale"
            ),
            "alert EventfleetLagStale: runbook_url names #lag-stale, which no heading",
        ),
        (
            lambda d: _rule(d, "EventfleetRoleIdle")["annotations"].update(
                runbook_url="https://wiki.example/runbooks#eventfleetroleidle"
            ),
            "is not on the runbook page https://eventfleet.github.io/eventfleet/operations/runbooks/",
        ),
    ],
)
def test_a_missing_or_dead_runbook_link_is_named(change: Any, message: str) -> None:
    doc = copy.deepcopy(groups())
    change(doc)
    problems = runbook_problems(doc, RUNBOOKS, site_url())
    assert any(message in p for p in problems), problems


def test_a_runbook_renamed_in_the_docs_breaks_its_link() -> None:
    renamed = RUNBOOKS.replace("## EventfleetCommitFailures", "## Commit failures")
    problems = runbook_problems(groups(), renamed, site_url())
    assert problems == [
        "alert EventfleetCommitFailures: runbook_url names #eventfleetcommitfailures, which no "
        "heading of docs/operations/runbooks.md makes"
    ]
