"""PromQL read by a real parser (``promql-parser``, a binding of the Rust parser that follows
Prometheus' grammar and type checks), plus what only we know: the metrics and labels it names.

``metric_names`` lists the metrics an expression selects; ``label_uses`` lists every label it
names in a matcher or in ``by``/``without``/``on``/``ignoring``, with the metrics in scope,
so the checks can hold both against the registry of ``workers/metrics.py``. Grafana's
``$__rate_interval``-style variables are replaced by a duration first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser

GRAFANA_VARS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)


class PromQLError(ValueError):
    """The expression is not valid PromQL."""


@dataclass(frozen=True, slots=True)
class LabelUse:
    """A label an expression names, where, and the metrics whose series it applies to."""

    label: str
    where: str  # "matcher", "by", "without", "on", "ignoring", "group"
    metrics: frozenset[str]


@dataclass(slots=True)
class _Found:
    metrics: set[str] = field(default_factory=set)
    labels: list[LabelUse] = field(default_factory=list)


def parse(expr: str) -> promql_parser.Expr:
    text = GRAFANA_VARS.sub("5m", expr).strip()
    if not text:
        raise PromQLError("the expression is empty")
    try:
        return promql_parser.parse(text)
    except ValueError as e:
        raise PromQLError(str(e)) from None


def _selected(node: object) -> set[str]:
    """Names of every metric selected anywhere under ``node``."""
    found: set[str] = set()

    def visit(child: object) -> None:
        if isinstance(child, promql_parser.VectorSelector):
            found.update(_names(child))

    promql_parser.walk(node, visit)
    return found


def _names(selector: promql_parser.VectorSelector) -> set[str]:
    if selector.name:
        return {selector.name}
    return {m.value for m in selector.matchers.matchers if m.name == "__name__"}


def _analyse(expr: str) -> _Found:
    found = _Found()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names = _names(node)
            found.metrics.update(names)
            for matcher in node.matchers.matchers:
                if matcher.name != "__name__":
                    found.labels.append(LabelUse(matcher.name, "matcher", frozenset(names)))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            where = "by" if node.modifier.type == promql_parser.AggModifierType.By else "without"
            scope = frozenset(_selected(node.expr))
            found.labels += [LabelUse(label, where, scope) for label in node.modifier.labels]
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            scope = frozenset(_selected(node.lhs) | _selected(node.rhs))
            matching = node.modifier.matching
            if matching is not None:
                where = (
                    "on" if matching.type == promql_parser.LabelModifierType.Include else "ignoring"
                )
                found.labels += [LabelUse(label, where, scope) for label in matching.labels]
            found.labels += [
                LabelUse(label, "group", scope) for label in node.modifier.group_labels or ()
            ]

    promql_parser.walk(parse(expr), visit)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects; raises PromQLError when it does not parse."""
    return _analyse(expr).metrics


def label_uses(expr: str) -> list[LabelUse]:
    """Every label ``expr`` names, with the metrics it applies to."""
    return _analyse(expr).labels
