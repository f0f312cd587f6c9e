"""A finalizer that parses, run by a collection during a parse, breaks 3.11's AST constructor;
the tests' guard (tests/ast_guard.py) keeps collections out of every parse."""

from __future__ import annotations

import ast
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ast_guard import paused_collector

SOURCE = Path(__file__).read_text()


class ParsesWhenCollected:
    """Garbage whose finalizer parses, as a logged traceback does on Python 3.11."""

    def __del__(self) -> None:
        ast.parse("x = (1 + (2 * (3 - f(a[b])))).y")


@pytest.fixture
def collected_often() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.set_threshold(50, 1, 1)
    yield
    gc.set_threshold(*thresholds)


def parses(parse: Callable[..., Any], rounds: int = 20) -> int:
    """How many of ``rounds`` parses, each with cyclic garbage to collect, succeed."""
    ok = 0
    for _ in range(rounds):
        for _ in range(60):
            garbage = ParsesWhenCollected()
            garbage.me = garbage  # type: ignore[attr-defined]
        del garbage
        try:
            parse(SOURCE)
            ok += 1
        except SystemError:  # "AST constructor recursion depth mismatch" on 3.11
            continue
    gc.collect()
    return ok


def test_the_guard_parses_every_time_with_garbage_collected_around_it(
    collected_often: None,
) -> None:
    raw = getattr(ast.parse, "__wrapped_parse__", ast.parse)
    if sys.version_info[:2] == (3, 11):  # the fault the guard is for
        assert parses(raw) < 20
    assert parses(paused_collector(raw)) == 20


def test_the_guard_is_installed_in_the_test_processes() -> None:
    assert hasattr(ast.parse, "__wrapped_parse__")
