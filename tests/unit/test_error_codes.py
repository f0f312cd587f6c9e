"""One registry of error codes (``ERROR_CODES``) and the code that answers them.

Both ways: every ``error(status, "code", ...)`` in the package and every error class's ``code``
(what ``failure`` and the command side answer an error with) is a registered code, answered with
its one status, and every registered code is answered somewhere. The documentation's table is
generated from the registry when the site is built (``tests/unit/test_docs_reference.py``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from topics.errors import (
    EventfleetError,
    HistoryGone,
    OutcomeUnknown,
    StreamOutcomeUnknown,
    TooManyTickets,
    TransitionRejected,
    Unavailable,
    UnknownSchemaVersion,
    WrongExpectedVersion,
)
from topics.jsonvalue import JsonObject
from workers.http.ryw import NotYetStored, RefusedAtStore, TooManyWaiters
from workers.roles import outcomes
from workers.roles.append import judge
from workers.roles.command.told import outcome_of
from workers.roles.read.live import TooManySubscriptions
from workers.roles.state import VersionNotFound
from workers.runtime.answers import ERROR_CODES, answer_of, failure, status_of
from workers.runtime.door.origins import CrossOrigin

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


def error_classes() -> list[type[EventfleetError]]:
    """Every error class of the packages: the modules whose classes name a ``code`` are
    imported, then the error tree is walked (a class naming none is answered as its parent)."""
    for top in ("topics", "snapshot_rules", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if any(_names_a_code(node) for node in ast.walk(ast.parse(path.read_text()))):
                parts = path.relative_to(ROOT).with_suffix("").parts
                importlib.import_module(".".join(p for p in parts if p != "__init__"))
    found, todo = [], [EventfleetError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def _names_a_code(node: ast.AST) -> bool:
    """``code = "..."`` in a class's body."""
    return isinstance(node, ast.ClassDef) and any(
        isinstance(item, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(t, ast.Name) and t.id == "code"
            for t in (item.targets if isinstance(item, ast.Assign) else [item.target])
        )
        for item in node.body
    )


def computed_codes() -> set[str]:
    """The codes answered from a value: an error class's own code, the store's refusals and an
    accepted event the appender dead-lettered."""
    return {cls.code for cls in error_classes()} | {
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


def test_every_error_class_names_a_registered_code() -> None:
    registered = {e.code for e in ERROR_CODES}
    classes = error_classes()
    assert len(classes) > 40  # the walk found the tree, not only its root
    wrong = sorted(f"{c.__module__}.{c.__qualname__}: {c.code}" for c in classes
                   if c.code not in registered)  # fmt: skip
    assert not wrong, f"register these codes (or name a registered one): {wrong}"


def test_a_dependency_s_code_names_its_service_where_one_is_registered() -> None:
    registered = {e.code for e in ERROR_CODES}
    for cls in (c for c in error_classes() if issubclass(c, Unavailable)):
        named = f"{cls.service}_unavailable"
        assert cls.code == (named if named in registered else "dependency_unavailable"), cls


@pytest.mark.parametrize(
    ("e", "status", "code", "fields"),
    [
        (EventfleetError("a bug"), 500, "internal", {}),
        (UnknownSchemaVersion("v9"), 500, "replay_failed", {}),
        (OutcomeUnknown("sent"), 503, "dependency_unavailable", {}),
        (StreamOutcomeUnknown("sent"), 503, "stream_unavailable", {}),
        (VersionNotFound("past", newest=3), 404, "version_not_found", {"newest_version": 3}),
        (HistoryGone("gone", after_version=2, whole_from=9), 410, "history_compacted",
         {"whole_from": 9, "after_version": 2}),
        (RefusedAtStore("no", reason="invalid_data", event_id="e", command_id="c"), 409,
         "refused", {"reason": "invalid_data", "event_id": "e", "command_id": "c"}),
        (TooManyWaiters("wait", limit="process", retry_after_s=2), 429, "too_many_waiters",
         {"limit": "process", "retry_after_s": 2}),
        (TooManyTickets("held", limit="fleet", retry_after_s=60), 429, "too_many_tickets",
         {"limit": "fleet", "retry_after_s": 60}),
        (TooManySubscriptions("full", limit="principal"), 429, "too_many_subscriptions",
         {"limit": "principal", "retry_after_s": 5}),
        (NotYetStored("late", stored_version=1, wanted_version=None), 504, "not_yet_stored",
         {"stored_version": 1, "wanted_version": None}),
        (CrossOrigin("cross_site", "from afar"), 403, "cross_origin", {"reason": "cross_site"}),
    ],
)  # fmt: skip
def test_an_error_is_answered_with_its_code_status_message_and_fields(
    e: EventfleetError, status: int, code: str, fields: JsonObject
) -> None:
    answer = failure(e)
    assert answer.status == status
    assert answer.body == {"error": code, "message": str(e), **fields}


@pytest.mark.parametrize(
    "e",
    [
        TransitionRejected("no", current="OrderShipped", allowed=["OrderPlaced"]),
        TransitionRejected("no", current=None, allowed=[]),
        WrongExpectedVersion("order o1", expected=3, current=4),
    ],
)
def test_the_command_side_tells_a_refusal_as_the_http_side_answers_it(e: EventfleetError) -> None:
    told = answer_of(outcome_of(e))
    assert (told.status, told.body) == (failure(e).status, failure(e).body)


def test_a_code_answered_from_a_value_keeps_its_status() -> None:
    assert status_of("invalid_data", 409) == 422  # a store refusal answers like the command side
    assert status_of("transition_rejected_at_store", 400) == 409
    assert status_of("no_such_code", 409) == 409
