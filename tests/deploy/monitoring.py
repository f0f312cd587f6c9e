"""Checks of alert rules, scrape configs and the Grafana dashboard against the registry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .project import SCRAPE_SERIES, TARGET_LABELS, declared_labels, declared_metrics
from .promql import PromQLError, label_uses, metric_names

_DURATION = re.compile(r"^([0-9]+(ms|[smhdwy]))+$")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>[a-zA-Z_]\w*)\)$")
SEVERITIES = frozenset({"info", "warning", "critical"})


def expr_problems(where: str, expr: str) -> list[str]:
    """Problems of one PromQL expression: syntax, and metrics the code does not declare."""
    try:
        names = metric_names(expr)
        uses = label_uses(expr)
    except PromQLError as e:
        return [f"{where}: {e} in {expr.strip()!r}"]
    known = declared_metrics() | SCRAPE_SERIES
    unknown = sorted(names - known)
    problems = [f"{where}: {name} is not declared in workers/metrics.py" for name in unknown]
    if not names:
        problems.append(f"{where}: selects no metric")
    labels = declared_labels()
    for use in uses:
        scope = [m for m in use.metrics if m in labels]
        if use.label in TARGET_LABELS or not scope:
            continue
        if not any(use.label in labels[m] for m in scope):
            problems.append(
                f"{where}: label {use.label!r} ({use.where}) is on none of "
                f"{', '.join(sorted(scope))} (workers/metrics.py)"
            )
    return problems


def rule_problems(groups: list[dict[str, Any]]) -> list[str]:
    """Problems of Prometheus rule groups (the rule-file format and PrometheusRule spec)."""
    problems: list[str] = []
    seen_groups: set[str] = set()
    for group in groups:
        name = group.get("name", "")
        if not name or name in seen_groups:
            problems.append(f"rule group {name!r}: names must be present and unique")
        seen_groups.add(name)
        for rule in group.get("rules", []):
            problems += _one_rule(name, rule)
    return problems


def _one_rule(group: str, rule: dict[str, Any]) -> list[str]:
    title = rule.get("alert") or rule.get("record") or "?"
    where = f"rule {group}/{title}"
    if ("alert" in rule) == ("record" in rule):
        return [f"{where}: needs exactly one of alert and record"]
    problems = expr_problems(where, str(rule.get("expr", "")))
    for key in ("for", "keep_firing_for"):
        if key in rule and not _DURATION.match(str(rule[key])):
            problems.append(f"{where}: {key}={rule[key]!r} is not a duration like 15m")
    if "alert" in rule:
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{where}: labels.severity must be one of {sorted(SEVERITIES)}")
        if not rule.get("annotations", {}).get("summary"):
            problems.append(f"{where}: needs an annotations.summary")
        for text in rule.get("annotations", {}).values():
            if text.count("{{") != text.count("}}"):
                problems.append(f"{where}: unbalanced {{{{ }}}} in an annotation")
    return problems


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel.get('title')!r}/{target.get('refId')}", target.get("expr", "")
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query)
        match = _LABEL_VALUES.match(text.strip())
        yield f"variable {var.get('name')}", (match.group("expr") or "") if match else text


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """Problems of a Grafana dashboard: panel structure and every query's metrics."""
    problems: list[str] = []
    ids = [p.get("id") for p in _panels(dashboard)]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("dashboard: every panel needs a unique id")
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    for panel in _panels(dashboard):
        if panel.get("type") == "row":
            continue
        if not panel.get("targets"):
            problems.append(f"panel {panel.get('title')!r}: has no query")
        if not {"h", "w", "x", "y"} <= set(panel.get("gridPos", {})):
            problems.append(f"panel {panel.get('title')!r}: gridPos needs h, w, x and y")
    for where, expr in dashboard_exprs(dashboard):
        problems += expr_problems(where, expr)
        for var in re.findall(r"\$\{?([a-zA-Z_]\w*)", expr):
            if not var.startswith("__") and var not in variables:
                problems.append(f"{where}: uses ${var}, which the dashboard does not define")
    return problems


def scrape_problems(config: dict[str, Any]) -> list[str]:
    """Problems of a Prometheus configuration file (job names, relabel regexes, rules)."""
    problems: list[str] = []
    jobs = [job.get("job_name") for job in config.get("scrape_configs", [])]
    if len(jobs) != len(set(jobs)) or not jobs:
        problems.append(f"scrape config: job names must be present and unique, got {jobs}")
    for job in config.get("scrape_configs", []):
        for relabel in job.get("relabel_configs", []):
            try:
                re.compile(relabel.get("regex", "(.*)"))
            except re.error as e:
                problems.append(f"job {job.get('job_name')}: bad relabel regex: {e}")
            if relabel.get("action", "replace") == "replace" and "target_label" not in relabel:
                problems.append(f"job {job.get('job_name')}: a replace needs target_label")
    return problems


RUNBOOKS_PAGE = "operations/runbooks/"
"""Where docs/operations/runbooks.md is published, under the site's URL."""


def runbook_problems(groups: list[dict[str, Any]], runbooks: str, site_url: str) -> list[str]:
    """Every alert's ``runbook_url`` names its runbook: the runbook page of the published site,
    at an anchor one of the page's headings makes (mkdocs' own slugs)."""
    from markdown.extensions.toc import slugify

    anchors = {
        slugify(line.lstrip("#").strip(), "-")
        for line in runbooks.splitlines()
        if line.startswith("## ")
    }
    page = site_url.rstrip("/") + "/" + RUNBOOKS_PAGE
    problems = []
    for group in groups:
        for rule in (r for r in group.get("rules", []) if "alert" in r):
            url = str(rule.get("annotations", {}).get("runbook_url", ""))
            where = f"alert {rule['alert']}"
            base, _, anchor = url.partition("#")
            if not url:
                problems.append(f"{where}: needs annotations.runbook_url ({page}#<its runbook>)")
            elif base != page:
                problems.append(f"{where}: runbook_url {url} is not on the runbook page {page}")
            elif anchor not in anchors:
                problems.append(
                    f"{where}: runbook_url names #{anchor}, which no heading of "
                    "docs/operations/runbooks.md makes"
                )
    return problems
