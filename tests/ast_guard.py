"""``ast.parse`` with the garbage collector paused, in the test processes.

CPython 3.11 keeps one recursion counter for the AST constructor per interpreter. A collection
during ``ast.parse`` may run a finalizer that parses too (an asyncio future whose exception was
never retrieved logs its traceback, and 3.11's traceback module parses each line for its
carets): the outer parse then fails with ``SystemError: AST constructor recursion depth
mismatch``. pytest parses source to show a failure, so a failure shown while such garbage was
collected crashed the test worker (INTERNALERROR) and took the rest of its run with it
(tests/unit/test_ast_guard.py shows the fault and keeps the guard).
"""

from __future__ import annotations

import ast
import functools
import gc
from collections.abc import Callable
from typing import Any


def paused_collector(parse: Callable[..., Any]) -> Callable[..., Any]:
    """``parse``, run with no collection (so no finalizer) during it."""

    @functools.wraps(parse)
    def parse_alone(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return parse(*args, **kwargs)
        gc.disable()
        try:
            return parse(*args, **kwargs)
        finally:
            gc.enable()

    parse_alone.__wrapped_parse__ = parse  # type: ignore[attr-defined]
    return parse_alone


def install() -> None:
    """Guard ``ast.parse`` for every caller in this process (pytest, traceback, the tests)."""
    if not hasattr(ast.parse, "__wrapped_parse__"):
        ast.parse = paused_collector(ast.parse)
