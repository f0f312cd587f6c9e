"""A small PromQL parser: enough to reject malformed expressions and list metric names.

It is no replacement for ``promtool`` (which is not on PyPI): it checks the grammar
(balanced brackets, selectors, aggregations with by/without, binary operators with
on/ignoring/group_left, ranges, subqueries, offsets), that every function is a PromQL
function with the right number of arguments, and that range functions get a range.
Grafana's ``$__rate_interval``-style variables are replaced by a duration first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# name -> (min args, max args, index of the argument that must be a range vector or -1)
FUNCTIONS: dict[str, tuple[int, int, int]] = {
    **{
        f: (1, 1, 0)
        for f in (
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "deriv",
            "changes",
            "resets",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "last_over_time",
            "present_over_time",
            "absent_over_time",
        )
    },
    "quantile_over_time": (2, 2, 1),
    "predict_linear": (2, 2, 0),
    "holt_winters": (3, 3, 0),
    "histogram_quantile": (2, 2, -1),
    "label_replace": (5, 5, -1),
    "label_join": (3, 99, -1),
    "clamp": (3, 3, -1),
    **{f: (1, 2, -1) for f in ("clamp_min", "clamp_max", "round")},
    **{
        f: (1, 1, -1)
        for f in (
            "abs",
            "absent",
            "ceil",
            "floor",
            "exp",
            "ln",
            "log2",
            "log10",
            "sqrt",
            "sgn",
            "scalar",
            "vector",
            "timestamp",
            "sort",
            "sort_desc",
            "histogram_count",
            "histogram_sum",
            "histogram_avg",
        )
    },
    **{
        f: (0, 1, -1)
        for f in (
            "time",
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "days_in_month",
            "hour",
            "minute",
            "month",
            "year",
        )
    },
}
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "group",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    }
)
BINARY_OPS = frozenset(
    {"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2"}
)
MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})
GRAFANA_VARS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)

TOKEN = re.compile(
    r"""\s*(?:
      (?P<duration>(?:\d+(?:ms|[smhdwy]))+)
    | (?P<number>0x[0-9a-fA-F]+|\d+\.?\d*(?:e[+-]?\d+)?|\.\d+|(?:Inf|NaN)\b)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|==|!=|>=|<=|[-+*/%^<>=(){}\[\],:@])
    )""",
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression is not valid PromQL (as far as this checker understands it)."""


@dataclass(slots=True)
class _Parser:
    tokens: list[tuple[str, str]]
    pos: int = 0
    metrics: set[str] = field(default_factory=set)

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok_kind, tok_value = self.peek()
        if (kind and tok_kind != kind) or (value and tok_value != value):
            raise PromQLError(f"expected {value or kind} but found {tok_value or 'the end'!r}")
        self.pos += 1
        return tok_value

    def at(self, value: str) -> bool:
        return self.peek()[1] == value and self.peek()[0] in ("op", "ident")

    def expr(self) -> bool:
        """Parse an expression; return whether it is a range vector."""
        is_range = self.unary()
        while self.peek()[1] in BINARY_OPS and self.peek()[0] in ("op", "ident"):
            self.take()
            if self.at("bool"):
                self.take()
            if self.at("on") or self.at("ignoring"):
                self.take()
                self.labels()
                if self.at("group_left") or self.at("group_right"):
                    self.take()
                    if self.at("("):
                        self.labels()
            self.unary()
            is_range = False
        return is_range

    def unary(self) -> bool:
        if self.at("-") or self.at("+"):
            self.take()
        is_range = self.primary()
        while True:
            if self.at("["):
                is_range = self.range_or_subquery()
            elif self.at("offset"):
                self.take()
                if self.at("-"):
                    self.take()
                self.take("duration")
            elif self.at("@"):
                self.take()
                if self.peek()[0] == "number":
                    self.take()
                else:
                    self.call(self.take("ident"))
            else:
                return is_range

    def range_or_subquery(self) -> bool:
        self.take("op", "[")
        self.take("duration")
        if self.at(":"):
            self.take()
            if self.peek()[0] == "duration":
                self.take()
        self.take("op", "]")
        return True

    def primary(self) -> bool:
        kind, value = self.peek()
        if kind in ("number", "string", "duration"):
            self.take()
            return False
        if value == "(":
            self.take()
            is_range = self.expr()
            self.take("op", ")")
            return is_range
        if value == "{":
            self.matchers()
            return False
        if kind != "ident":
            raise PromQLError(f"unexpected {value or 'end of expression'!r}")
        name = self.take()
        if name in AGGREGATIONS:
            self.aggregation()
        elif self.at("("):
            return self.call(name)
        else:
            self.metrics.add(name)
            if self.at("{"):
                self.matchers()
        return False

    def aggregation(self) -> None:
        if self.at("by") or self.at("without"):
            self.take()
            self.labels()
        self.take("op", "(")
        self.expr()
        while self.at(","):
            self.take()
            self.expr()
        self.take("op", ")")
        if self.at("by") or self.at("without"):
            self.take()
            self.labels()

    def call(self, name: str) -> bool:
        if name not in FUNCTIONS:
            raise PromQLError(f"{name}() is not a PromQL function")
        low, high, range_arg = FUNCTIONS[name]
        self.take("op", "(")
        ranges: list[bool] = []
        if not self.at(")"):
            ranges.append(self.expr())
            while self.at(","):
                self.take()
                ranges.append(self.expr())
        self.take("op", ")")
        if not low <= len(ranges) <= high:
            raise PromQLError(f"{name}() takes {low} to {high} arguments, not {len(ranges)}")
        if range_arg >= 0 and not ranges[range_arg]:
            raise PromQLError(f"{name}() needs a range vector such as metric[5m]")
        return False

    def labels(self) -> None:
        self.take("op", "(")
        while not self.at(")"):
            self.take("ident")
            if not self.at(","):
                break
            self.take()
        self.take("op", ")")

    def matchers(self) -> None:
        self.take("op", "{")
        while not self.at("}"):
            label = self.take("ident")
            op = self.take("op")
            if op not in MATCH_OPS:
                raise PromQLError(f"{op!r} is not a label matcher")
            value = self.take("string")[1:-1]
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as e:
                    raise PromQLError(f"{label}{op}{value!r} is not a valid regex: {e}") from None
            if label == "__name__" and op == "=":
                self.metrics.add(value)
            if not self.at(","):
                break
            self.take()
        self.take("op", "}")


def tokenize(expr: str) -> list[tuple[str, str]]:
    text = GRAFANA_VARS.sub("5m", expr)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        match = TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise PromQLError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects; raises PromQLError when it does not parse."""
    parser = _Parser(tokenize(expr))
    if not parser.tokens:
        raise PromQLError("the expression is empty")
    parser.expr()
    if parser.pos != len(parser.tokens):
        raise PromQLError(f"unexpected {parser.peek()[1]!r} after a complete expression")
    return parser.metrics
