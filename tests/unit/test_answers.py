"""Statuses are the runtime's: role logic answers outcomes, ``workers.runtime.answers`` maps them."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from textwrap import indent

import orjson
import pytest

from workers.roles.outcomes import NotDone, Refused
from workers.roles.personal import Erased
from workers.runtime.answers import Answer, answer_of, erasure_answer, reply_of

ROOT = Path(__file__).resolve().parents[2]


def status_knowledge(source: str, name: str) -> list[str]:
    """Where ``source`` (a role module) knows HTTP statuses: it defines or imports ``Answer``,
    or one of its classes has a ``status`` (a field, a property, ``self.status = ...``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == "Answer":
            found.append(f"{name}:{node.lineno} defines Answer")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "Answer" for a in node.names):
            found.append(f"{name}:{node.lineno} imports Answer")
        elif isinstance(node, ast.ClassDef):
            found += [f"{name}:{line} {node.name} has a status" for line in _status_members(node)]
    return found


def _status_members(cls: ast.ClassDef) -> list[int]:
    lines = []
    for item in cls.body:
        if isinstance(item, ast.AnnAssign | ast.Assign):
            targets = [item.target] if isinstance(item, ast.AnnAssign) else item.targets
            lines += [item.lineno for t in targets if isinstance(t, ast.Name) and t.id == "status"]
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            if item.name == "status":
                lines.append(item.lineno)
            for node in ast.walk(item):  # self.status = ... in a method
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else ([node.target] if isinstance(node, ast.AnnAssign) else [])
                )
                lines += [
                    node.lineno for t in targets
                    if isinstance(t, ast.Attribute) and t.attr == "status"
                    and isinstance(t.value, ast.Name) and t.value.id == "self"
                ]  # fmt: skip
    return lines


def test_no_role_module_defines_or_imports_the_http_answer_or_carries_a_status() -> None:
    found = []
    for path in sorted((ROOT / "workers" / "roles").rglob("*.py")):
        found += status_knowledge(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, f"roles return outcomes; the runtime gives them a status: {found}"


@pytest.mark.parametrize(
    "planted",
    [
        "from workers.runtime.answers import Answer\n",
        "class Answer:\n    pass\n",
        "@dataclass(frozen=True, slots=True)\nclass ErasureAnswer:\n    status: int\n    body: dict\n",
        "class Told(Protocol):\n    @property\n    def status(self) -> int: ...\n",
        "class Reply:\n    def __init__(self, code: int) -> None:\n        self.status = code\n",
        "class Reply:\n    status = 200\n",
    ],
)
def test_the_check_finds_a_planted_status(planted: str) -> None:
    assert len(status_knowledge(planted, "workers/roles/planted.py")) == 1


def test_the_check_leaves_a_status_read_from_a_port_alone() -> None:
    reading = (
        "class Ledger:\n    def settle(self, result: MarkResult) -> bool:\n"
        "        return result.status == 'marked'\n"
    )
    assert status_knowledge(reading, "workers/roles/planted.py") == []


def test_a_reply_is_the_answer_of_the_outcome_encoded() -> None:
    refused = Refused("transition_rejected_at_store", "refused at the store.", {"event_id": "e1"})
    told = Answer.decode(reply_of(refused))
    assert told == answer_of(refused)
    assert (told.status, told.body["error"], told.body["event_id"]) == (
        409, "transition_rejected_at_store", "e1",
    )  # fmt: skip


def test_nothing_done_is_answered_with_its_codes_status() -> None:
    assert answer_of(NotDone("store_catching_up", "m", "store", {"retry_after_s": 1})).status == 503
    assert answer_of(NotDone("internal", "the command path failed.", "fleet")).status == 500
    unregistered = answer_of(NotDone("keys_unavailable", "m", "keys"))  # a service not listed
    assert (unregistered.status, unregistered.body["error"]) == (503, "keys_unavailable")


def test_an_answer_that_is_no_reply_is_a_clear_error() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        Answer.decode(b"not json")
    with pytest.raises(KeyError):
        Answer.decode(b'{"body": {}}')


def test_an_erasure_is_answered_200_with_its_fields_and_an_unknown_subject_404() -> None:
    at = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    told = erasure_answer(Erased("ann", at, "dpo", keys_destroyed=1, already=False,
                                 unreadable_within_s=60.0))  # fmt: skip
    assert (told.status, dict(told.body)) == (200, {
        "subject": "ann", "erased_at": "2026-11-24T10:00:00.000000Z", "by": "dpo", "keys_destroyed": 1,
        "already_erased": False, "unreadable_everywhere_within_s": 60.0,
    })  # fmt: skip
    unknown = erasure_answer(Refused("not_found", "no personal data of subject 'x'."))
    assert (unknown.status, dict(unknown.body)) == (
        404, {"error": "not_found", "message": "no personal data of subject 'x'."},
    )  # fmt: skip


def answering_catches(source: str, name: str) -> list[str]:
    """Where ``source`` catches one of our errors only to answer it (``except EventfleetError as
    e: return json_response(failure(e))``, or a ``Forbidden`` through the door): the edge's work
    (``workers/http/edge/app.py``), which answers whatever a handler raises."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name)):
            continue
        if node.type.id not in ("EventfleetError", "Forbidden") or len(node.body) != 1:
            continue
        said = node.body[0]
        if isinstance(said, ast.Return) and said.value is not None:
            answer = ast.unparse(said.value)
            if answer == "json_response(failure(e))" or answer.endswith("door.refused(e))"):
                found.append(f"{name}:{node.lineno}")
    return found


def test_no_route_catches_our_errors_only_to_answer_them() -> None:
    found = []
    for path in sorted((ROOT / "workers" / "http").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name != "workers/http/edge/app.py":
            found += answering_catches(path.read_text(), name)
    assert not found, f"raise it: the edge answers a handler's errors: {found}"


@pytest.mark.parametrize(
    "planted",
    [
        "try:\n    parse(body)\nexcept EventfleetError as e:\n    return json_response(failure(e))\n",
        "try:\n    check(r)\nexcept Forbidden as e:\n    return json_response(fleet.door.refused(e))\n",
    ],
)
def test_the_check_finds_a_planted_catch(planted: str) -> None:
    assert answering_catches(f"def route():\n{indent(planted, '    ')}", "planted.py") == [
        "planted.py:4"
    ]


def test_the_check_leaves_a_catch_that_answers_otherwise_alone() -> None:
    streamed = (
        "def route():\n    try:\n        open_stream()\n"
        "    except (TooManySubscriptions, HistoryGone) as e:\n"
        "        return json_response(failure(e))\n"
        "    try:\n        open_view()\n    except EventfleetError as e:\n"
        "        return failure(e), None\n"
    )
    assert answering_catches(streamed, "planted.py") == []
