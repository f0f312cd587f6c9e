"""One registry of error codes (``ERROR_CODES``) and the code that answers them.

Both ways: every ``error(status, "code", ...)`` in the package uses a registered code with its
one status, and every registered code is answered somewhere. The documentation's table is
generated from the registry when the site is built (``tests/unit/test_docs_reference.py``).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from topics import errors
from workers.roles import outcomes
from workers.roles.append import judge
from workers.runtime.answers import ERROR_CODES, status_of

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("Refused", "NotDone")
"""Role logic answers with outcomes; the runtime gives them their code's status."""


def error_calls() -> list[tuple[str, int | None, str | None]]:
    """(where, status, code) of each ``error(status, code, ...)`` call and each refusal or
    not-done outcome (``Refused(code, ...)``: the status is the registry's); None where an
    argument is computed."""
    found = []
    for path in sorted((ROOT / "workers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None)
            if name == "error" and len(node.args) >= 2:
                status, code = node.args[0], node.args[1]
            elif name in OUTCOMES and node.args:
                status, code = None, node.args[0]
            else:
                continue
            found.append(
                (
                    f"{path.relative_to(ROOT)}:{node.lineno}",
                    status.value if isinstance(status, ast.Constant) else None,
                    code.value if isinstance(code, ast.Constant) else None,
                )
            )
    return found


def computed_codes() -> set[str]:
    """The codes answered from a value: ``<service>_unavailable``, the store's refusals and an
    accepted event the appender dead-lettered."""
    services = {
        cls.service
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.Unavailable)
    }
    return {f"{s}_unavailable" for s in services} | {
        judge.TRANSITION_REJECTED,
        judge.INVALID_DATA,
        judge.FORBIDDEN_AT_STORE,
        outcomes.DEAD_LETTERED,
    }


def test_each_code_is_registered_once() -> None:
    codes = [e.code for e in ERROR_CODES]
    assert len(codes) == len(set(codes))


def test_every_answered_code_is_registered_with_its_one_status() -> None:
    registered = {e.code: e.status for e in ERROR_CODES}
    wrong = [
        (where, status, code)
        for where, status, code in error_calls()
        if code is not None and (code not in registered or status not in (None, registered[code]))
    ]
    assert not wrong, f"register these codes (or answer them with their status): {wrong}"
    missing = sorted(computed_codes() - registered.keys())
    assert not missing, f"codes answered from a value but not registered: {missing}"


def test_every_registered_code_is_answered_somewhere() -> None:
    answered = {code for _, _, code in error_calls() if code is not None} | computed_codes()
    unused = sorted({e.code for e in ERROR_CODES} - answered)
    assert not unused, f"registered but never answered (remove them): {unused}"


def test_a_code_answered_from_a_value_keeps_its_status() -> None:
    assert status_of("invalid_data", 409) == 422  # a store refusal answers like the command side
    assert status_of("transition_rejected_at_store", 400) == 409
    assert status_of("no_such_code", 409) == 409
