"""Alert rules, scrape configs and the dashboard parse and name only declared metrics."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from .compose_checks import fleet_services
from .kustomize import render
from .monitoring import dashboard_exprs, dashboard_problems, rule_problems, scrape_problems
from .project import DEPLOY, K8S
from .promql import PromQLError, metric_names

RULES = DEPLOY / "prometheus" / "eventfleet.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "eventfleet-dashboard.json"


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def alerts_by_metric() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                found.setdefault(name, set()).add(rule["alert"])
    return found


def test_alert_rules_parse_and_use_declared_metrics() -> None:
    assert rule_problems(rule_groups()) == []


def test_the_issue_alerts_exist() -> None:
    metrics = alerts_by_metric()
    # lag growing, DLQ non-empty, error ratio, no snapshots
    # lag from the brokers (survives its pods), and alerts when nothing measures it
    assert "EventfleetConsumerLagGrowing" in metrics["eventfleet_group_lag_events"]
    assert "EventfleetLagUnmeasured" in metrics["eventfleet_lag_read_timestamp_seconds"]
    assert "EventfleetGroupLagMissing" in metrics["eventfleet_group_lag_events"]
    assert "EventfleetNotScraped" in metrics["up"]
    assert "EventfleetRebalancing" in metrics["eventfleet_rebalances_total"]
    assert "EventfleetDependencyDown" in metrics["eventfleet_dependency_up"]
    assert "EventfleetDeadLetters" in metrics["eventfleet_dead_lettered_total"]
    assert "EventfleetCommandErrorRatioHigh" in metrics["eventfleet_requests_total"]
    assert "EventfleetNoSnapshots" in metrics["eventfleet_snapshots_written_total"]


def test_prometheus_rule_object_carries_the_same_groups() -> None:
    objects = render(K8S / "base")
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-compose.yml"])
def test_scrape_configs_are_sound_and_load_the_rules(name: str) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
    assert scrape_problems(config) == []
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file()


def test_compose_prometheus_scrapes_every_role_container() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-compose.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    targets = {
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    }
    roles = {n for n, s in fleet_services(compose).items() if s["command"][0] == "worker"}
    port = compose["services"]["commands"]["environment"]["EVENTFLEET_OPERATOR_PORT"]
    assert targets == {f"{name}:{port}" for name in roles}  # the API's port serves no /metrics


def test_dashboard_queries_parse_and_use_declared_metrics() -> None:
    assert dashboard_problems(dashboard()) == []


def test_dashboard_covers_the_issue_panels() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_exprs(dashboard())))
    assert {
        "eventfleet_requests_total",  # request rate by outcome
        "eventfleet_command_latency_seconds_bucket",  # p50/p99
        "eventfleet_events_appended_total",  # append rate
        "eventfleet_append_batch_size_sum",
        "eventfleet_append_batch_size_count",
        "eventfleet_consumer_lag_events",  # per role/partition
        "eventfleet_dead_lettered_total",
        "eventfleet_snapshots_written_total",
        "eventfleet_replay_duration_seconds_bucket",
        "eventfleet_events_forwarded_total",
        "eventfleet_projection_lag_events",
    } <= used
    lag = next(e for w, e in dashboard_exprs(dashboard()) if "eventfleet_consumer_lag_events" in e)
    assert "by (role, topic, partition)" in lag


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {
                "alert": "A",
                "expr": "rate(eventfleet_requests_total[5m]) > 1",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            None,
        ),
        (
            {
                "alert": "A",
                "expr": "eventfleet_request_total > 1",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "eventfleet_request_total is not declared in workers/metrics.py",
        ),
        (
            {
                "alert": "A",
                "expr": "sum(rate(eventfleet_requests_total[5m]) > 1",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "unclosed left parenthesis",
        ),
        (
            {
                "alert": "A",
                "expr": "rate(eventfleet_requests_total) > 1",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "expected type matrix in call to function 'rate'",
        ),
        (
            {
                "alert": "A",
                "expr": "rate(sum(eventfleet_requests_total)[5m]) > 1",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "ranges only allowed for vector selectors",
        ),
        (
            {
                "alert": "A",
                "expr": 'sum by (rol) (rate(eventfleet_dead_lettered_total{reasn="x"}[5m])) > 0',
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "label 'reasn' (matcher) is on none of eventfleet_dead_lettered_total",
        ),
        (
            {
                "alert": "A",
                "expr": "sum by (rol) (rate(eventfleet_dead_lettered_total[5m])) > 0",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "label 'rol' (by) is on none of eventfleet_dead_lettered_total",
        ),
        (
            {
                "alert": "A",
                "expr": "eventfleet_role_ready == 0",
                "for": "ten minutes",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "s"},
            },
            "is not a duration",
        ),
        (
            {
                "alert": "A",
                "expr": "eventfleet_role_ready == 0",
                "labels": {"severity": "page"},
                "annotations": {"summary": "s"},
            },
            "labels.severity",
        ),
        (
            {
                "alert": "A",
                "expr": "eventfleet_role_ready == 0",
                "labels": {"severity": "warning"},
                "annotations": {"summary": "{{ $labels.role }"},
            },
            "unbalanced",
        ),
    ],
)
def test_a_broken_rule_is_rejected(rule: dict[str, Any], message: str | None) -> None:
    problems = rule_problems([{"name": "g", "rules": [rule]}])
    if message is None:
        assert problems == []
    else:
        assert any(message in p for p in problems), problems


def test_the_latency_panel_shows_exemplars_that_link_to_traces() -> None:
    panel = next(p for p in dashboard()["panels"] if p["title"] == "Command latency")
    assert all(t["exemplar"] is True for t in panel["targets"])
    sources = yaml.safe_load((DEPLOY / "grafana" / "datasources.yaml").read_text())
    by_uid = {s["uid"]: s for s in sources["datasources"]}
    (destination,) = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"  # the exemplar label workers/tracing.py writes
    assert by_uid[destination["datasourceUid"]]["type"] in ("jaeger", "tempo")


def test_a_broken_dashboard_is_rejected() -> None:
    broken = copy.deepcopy(dashboard())
    panel = next(p for p in broken["panels"] if p["type"] == "timeseries")
    panel["targets"][0]["expr"] = (
        'sum(rate(eventfleet_commands_total{role=~"$rol"}[$__rate_interval]))'
    )
    broken["panels"].append({**panel, "targets": []})
    problems = dashboard_problems(broken)
    assert any("eventfleet_commands_total is not declared" in p for p in problems)
    assert any("uses $rol" in p for p in problems)
    assert any("unique id" in p for p in problems)
    assert any("has no query" in p for p in problems)


def test_a_broken_scrape_config_is_rejected() -> None:
    config = {
        "scrape_configs": [
            {"job_name": "a", "relabel_configs": [{"source_labels": ["x"], "regex": "(unclosed"}]},
            {"job_name": "a", "relabel_configs": [{"source_labels": ["x"], "action": "replace"}]},
        ]
    }
    problems = scrape_problems(config)
    assert any("unique" in p for p in problems)
    assert any("bad relabel regex" in p for p in problems)
    assert any("needs target_label" in p for p in problems)


@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        ("up", {"up"}),
        (
            'sum by (a, b) (rate(x_total{c="d", e=~"f.*"}[5m])) / ignoring (b) group_left sum(y)',
            {"x_total", "y"},
        ),
        (
            "histogram_quantile(0.99, sum without (pod) (rate(h_bucket[$__rate_interval])))",
            {"h_bucket"},
        ),
        ("max_over_time(deriv(g[10m] offset 1h)[1h:5m]) > bool 0", {"g"}),
        ("foo @ end()", {"foo"}),  # valid; the hand-written parser refused it
        ("rate(foo[5m] @ start())", {"foo"}),
        ('topk(3, count_values("v", g)) or vector(0)', {"g"}),
        ('{__name__="named"} unless on (a) absent(z)', {"named", "z"}),
        ("-x * 2 ^ 3 % 4 and y", {"x", "y"}),
    ],
)
def test_promql_parser_accepts_and_lists_metrics(expr: str, metrics: set[str]) -> None:
    assert metric_names(expr) == metrics


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "rate(x)",
        "sum(rate(x[5m])",
        "nosuch(x)",
        'x{a="b"',
        "sum by (a (x)",
        "x >",
        "x[5m",
        "histogram_quantile(0.9)",
        'x{a=~"("}',
        "x y",
        'x{a=="b"}',
        "x)",
        "sum(x) by",
        "rate(x[5 m])",
        # Accepted by the hand-written parser this one replaces (issue 12):
        "rate(sum(x)[10m])",
        "sum(foo, bar)",
        "foo and 1",
        "rate(foo[0s])",
        "max_over_time(g[1h]) offset 1h",
    ],
)
def test_promql_parser_rejects_malformed_expressions(expr: str) -> None:
    with pytest.raises(PromQLError):
        metric_names(expr)


def test_an_alert_edited_into_a_range_over_an_aggregation_fails_the_deploy_checks() -> None:
    """The edit from issue 12 that the hand-written parser let through."""
    groups = copy.deepcopy(rule_groups())
    rule = next(r for r in groups[0]["rules"] if r["alert"] == "EventfleetCommandErrorRatioHigh")
    rule["expr"] = "rate(sum(eventfleet_requests_total)[5m]) > 0.05"
    problems = rule_problems(groups)
    assert any("ranges only allowed for vector selectors" in p for p in problems), problems


def test_every_label_the_rules_and_dashboard_name_is_declared() -> None:
    from .promql import label_uses

    exprs = [r["expr"] for g in rule_groups() for r in g["rules"]]
    exprs += [e for _, e in dashboard_exprs(dashboard())]
    used = {use.label for expr in exprs for use in label_uses(expr)}
    assert {"role", "topic", "reason", "service", "group"} <= used
