"""Schemathesis against a live fleet, over the whole document it serves (issue 34).

The fleet runs every role on the embedded stack with its default auth (``jwt``, the test
issuer's token on every request). Each operation gets positive and negative cases, then the
stateful run follows the document's links (append → state, events, outcome). Every answer
must be in the document (status, content type, body schema), none a 5xx; every refusal the
document lists (4xx) must be reached, by the fuzz or by a directed case validated the same way.
Bounded and reproducible: few examples per operation, derandomized, no example database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fleet import FleetProcess, running_fleet
from workers.devtools.embedded import EmbeddedStack

EXAMPLES = 6
"""Cases per operation and generation mode: the file runs well under a minute on 2 busy cores."""
STATEFUL_EXAMPLES = 8
TIMEOUT_S = 5.0
STREAM_TIMEOUT_S = 0.3
"""A subscription that is served streams until its client leaves: read it this long."""
WAITED = (504, "not_yet_stored")
"""The one 5xx a healthy fleet gives a valid request: a read told to wait for a version or a
command that never comes (answered after its ``wait_ms``). Any other 5xx is a fault."""


def no_server_fault(ctx: Any, response: Any, case: Case) -> bool | None:
    """Like schemathesis' not_a_server_error, but a read's documented wait running out is an
    answer, not a fault (its body must still be the documented one)."""
    if response.status_code < 500:
        return None
    if (response.status_code, error_code(response)) == WAITED:
        return None
    raise ServerError(operation=case.operation.label, status_code=response.status_code)


CHECKS = [
    no_server_fault,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]


def error_code(response: Any) -> str | None:
    """The ``error`` of an error answer's JSON body, None for any other answer."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@dataclass
class Tally:
    """What the run did: cases sent, operations covered, (operation, status) pairs answered."""

    cases: int = 0
    operations: set[str] = field(default_factory=set)
    answered: set[tuple[str, int]] = field(default_factory=set)
    codes: set[tuple[str, str]] = field(default_factory=set)

    def record(self, case: Case, response: Any) -> None:
        self.cases += 1
        label = case.operation.label
        self.operations.add(label)
        self.answered.add((label, response.status_code))
        code = error_code(response)
        if code is not None:
            self.codes.add((label, code))


@pytest.fixture(scope="module")
async def fuzzed(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet of its own: the fuzz leaves garbage aggregates behind."""
    name = f"fuzz_{uuid.uuid4().hex[:8]}"
    async with running_fleet(
        stack, name, EVENTFLEET_LIVE_HEARTBEAT_S="1", EVENTFLEET_LIVE_MAX_PER_PRINCIPAL="3"
    ) as process:
        yield process


def load(fleet: FleetProcess) -> tuple[Any, dict[str, str]]:
    headers = fleet.auth_headers
    raw = requests.get(fleet.url + "/openapi.json", headers=headers, timeout=TIMEOUT_S)
    assert raw.status_code == 200, raw.text
    schema = schemathesis.openapi.from_dict(raw.json())
    return schema, headers


def settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


def sender(fleet: FleetProcess, headers: dict[str, str], tally: Tally) -> Callable[[Case], Any]:
    session = requests.Session()

    def send(case: Case) -> Any:
        query = case.query or {}
        if {"min_version", "command_id"} & query.keys() and "outcome" not in case.path:
            # a read may wait up to 30 s (1 s unless told): keep the run short
            wait = query.get("wait_ms")
            query["wait_ms"] = min(int(wait), 50) if isinstance(wait, int) else 50
        streams = case.operation.path.endswith(("/subscribe", "/ws"))
        timeout = STREAM_TIMEOUT_S if streams else TIMEOUT_S
        response = case.call(base_url=fleet.url, session=session, headers=headers, timeout=timeout)
        tally.record(case, response)
        return response

    return send


def operations(schema: Any) -> list[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert found, "the document has no operations"
    return found


def negatable(schema: Any, operation: Any) -> bool:
    """Whether the operation takes anything a negative case could get wrong."""
    raw = schema.raw_schema["paths"][operation.path][operation.method.lower()]
    return bool(raw.get("parameters") or raw.get("requestBody"))


def fuzz(operation: Any, mode: GenerationMode, send: Callable[[Case], Any], headers: Any) -> None:
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = send(case)
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Exception as e:  # the report can be megabytes (a generated URL): keep its head
        text = str(e)
        raise AssertionError(text[:3000] + ("…" if len(text) > 3000 else "")) from None


def test_every_operation_answers_as_documented(fuzzed: FleetProcess) -> None:
    schema, headers = load(fuzzed)
    tally = Tally()
    send = sender(fuzzed, headers, tally)
    ops = operations(schema)
    for operation in ops:
        fuzz(operation, GenerationMode.POSITIVE, send, headers)
        if negatable(schema, operation):
            fuzz(operation, GenerationMode.NEGATIVE, send, headers)
    assert tally.operations == {op.label for op in ops}
    print(f"\nfuzz: {tally.cases} cases over {len(tally.operations)} operations; "
          f"{len(tally.answered)} (operation, status) pairs, {len(tally.codes)} error codes seen")  # fmt: skip
