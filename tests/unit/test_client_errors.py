"""The client's exceptions are the fleet's error catalogue: one class per code, generated from
``ERROR_CODES`` and kept equal to it; an answer becomes its class, an unknown one stays typed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workers.client import ApiError, ClientError, TransportError, errors
from workers.client.codegen import TARGET, class_name, is_retriable, render
from workers.client.errors import BY_CODE
from workers.runtime.error_codes import ERROR_CODES, ErrorCode


def test_the_generated_classes_are_the_catalogue_as_it_is_now() -> None:
    assert TARGET.read_text() == render(), (
        "workers/client/_catalogue.py differs from ERROR_CODES: run "
        "`python -m workers.client.codegen` and commit the file"
    )


def test_the_drift_check_sees_a_code_added_changed_or_removed() -> None:
    added = (*ERROR_CODES, ErrorCode("teapot_refused", 418, "a teapot", "use a kettle"))
    changed = (replace(ERROR_CODES[0], status=418), *ERROR_CODES[1:])
    for entries in (added, changed, ERROR_CODES[1:]):
        assert render(entries) != TARGET.read_text()
    assert 'class TeapotRefusedError(ApiError, code="teapot_refused", status=418):' in render(added)


def test_every_code_has_its_class_with_its_status_and_each_is_exported() -> None:
    assert sorted(BY_CODE) == sorted(e.code for e in ERROR_CODES)
    for entry in ERROR_CODES:
        cls = BY_CODE[entry.code]
        assert (cls.code, cls.status, cls.__name__) == (
            entry.code,
            entry.status,
            class_name(entry.code),
        )
        assert issubclass(cls, ApiError) and getattr(errors, cls.__name__) is cls
        assert cls.__name__ in errors.__all__
        assert cls.retriable is is_retriable(entry)
        assert entry.cause.split()[0] in (cls.__doc__ or "")  # its cause, for help()


@pytest.mark.parametrize(
    ("code", "retriable"),
    [
        ("outcome_unknown", True), ("stream_unavailable", True), ("store_catching_up", True),
        ("shutting_down", True), ("too_many_subscriptions", True), ("command_in_progress", True),
        ("conflict", True), ("not_yet_stored", True),
        ("bad_request", False), ("unauthenticated", False), ("forbidden", False),
        ("transition_rejected", False), ("transition_rejected_at_store", False),
        ("invalid_data", False), ("refused", False), ("internal", False), ("not_found", False),
    ],
)  # fmt: skip
def test_retriable_says_whether_sending_again_can_help(code: str, retriable: bool) -> None:
    assert BY_CODE[code].retriable is retriable


def test_an_answer_becomes_its_class_with_its_fields_and_the_wait_asked_for() -> None:
    body = {"error": "transition_rejected", "message": "order o-1: no.", "current": "OrderPaid",
            "allowed": ["none"]}  # fmt: skip
    error = errors.error_from_answer(409, body)
    assert isinstance(error, errors.TransitionRejectedError) and isinstance(error, ClientError)
    assert (error.code, error.status, error.retriable) == ("transition_rejected", 409, False)
    assert error.body["current"] == "OrderPaid" and error.message == "order o-1: no."
    assert str(error) == "409 transition_rejected: order o-1: no."
    busy = errors.error_from_answer(
        429, {"error": "too_many_subscriptions", "message": "m", "retry_after_s": 5}
    )
    assert isinstance(busy, errors.TooManySubscriptionsError) and busy.retry_after_s == 5
    header = errors.error_from_answer(503, {"error": "store_catching_up", "message": "m",
                                            "retry_after_s": 1}, retry_after="7")  # fmt: skip
    assert header.retry_after_s == 7  # the header wins
    for unusable in ("soon", "-1", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"):
        found = errors.error_from_answer(503, {"error": "x", "message": "m"}, retry_after=unusable)
        assert found.retry_after_s is None, unusable
    denied = errors.error_from_answer(401, {"error": "unauthenticated", "message": "m",
                                            "reason": "expired"})  # fmt: skip
    assert isinstance(denied, errors.UnauthenticatedError) and denied.reason == "expired"


def test_an_unknown_code_or_a_foreign_body_is_still_a_typed_error_judged_by_its_status() -> None:
    newer = errors.error_from_answer(418, {"error": "a_code_from_the_future", "message": "m"})
    assert type(newer) is ApiError and (newer.code, newer.status, newer.retriable) == (
        "a_code_from_the_future", 418, False)  # fmt: skip
    proxy = errors.error_from_answer(502, "<html>bad gateway</html>")
    assert type(proxy) is ApiError and proxy.code == "http_502" and "bad gateway" in proxy.message
    assert proxy.retriable  # a gateway that could not reach the fleet: later
    assert errors.error_from_answer(503, None).retriable is True
    # A known code with another status than the catalogue's is not trusted as that code.
    odd = errors.error_from_answer(500, {"error": "bad_request", "message": "m"})
    assert type(odd) is ApiError and odd.code == "bad_request"
    assert TransportError.retriable is True
