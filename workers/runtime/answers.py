"""What a caller is told: every outcome and error as a status and one JSON shape.

Role logic decides outcomes (``workers.roles.outcomes``); this module alone maps them to
statuses, through ``ERROR_CODES`` (``workers.runtime.error_codes``), the one registry of error
answers (README's "Error codes" table is checked against it both ways). Our errors say their own
code, status and fields (``topics.errors``); ``failure`` reads them, the one mapping of an error to
an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from topics.envelope import utc_text
from topics.errors import EventfleetError
from topics.jsonvalue import Json, JsonObject
from workers.roles.outcomes import Accepted, Outcome, Refused, Stored, Unknown
from workers.roles.personal import Erased
from workers.runtime.error_codes import ERROR_CODES, ErrorCode

__all__ = [
    "ERROR_CODES",
    "Answer",
    "ErrorCode",
    "answer_bytes",
    "answer_of",
    "erasure_answer",
    "error",
    "failure",
    "reply_of",
    "status_of",
]


@dataclass(frozen=True, slots=True)
class Answer:
    """What the caller is told: an HTTP status and a JSON body."""

    status: int
    body: Mapping[str, Json]

    def encode(self) -> bytes:
        """The answer as a reply on ``commands.replies``: ``{"status": ..., "body": ...}``."""
        return orjson.dumps({"status": self.status, "body": self.body})

    @classmethod
    def decode(cls, raw: bytes | str) -> Answer:
        obj = orjson.loads(raw)
        return cls(int(obj["status"]), obj["body"])


def error(status: int, code: str, message: str, **extra: Json) -> Answer:
    """The one error shape: ``{"error": code, "message": sentence naming the fix, ...extra}``.

    ``code`` is one of ``ERROR_CODES``, answered with its status (a unit test reads every call).
    """
    return Answer(status, {"error": code, "message": message, **extra})


_BY_CODE = {entry.code: entry for entry in ERROR_CODES}


def status_of(code: str, default: int) -> int:
    """The status ``code`` is always answered with (``default`` for a code not registered)."""
    entry = _BY_CODE.get(code)
    return default if entry is None else entry.status


def answer_of(outcome: Outcome) -> Answer:
    """The status and body a caller gets for ``outcome``."""
    if isinstance(outcome, Accepted):
        body: JsonObject = {"event_id": outcome.event_id}
        if outcome.partition is not None:
            body |= {"partition": outcome.partition, "offset": outcome.offset}
        if outcome.version is not None:
            body["version"] = outcome.version
        if outcome.duplicate:
            body["duplicate"] = True
        return Answer(202, body)
    if isinstance(outcome, Stored):
        body = {"event_id": outcome.event_id, "version": outcome.version}
        if outcome.duplicate:
            body["duplicate"] = True
        else:
            body["published"] = outcome.published
        return Answer(201, body)
    if isinstance(outcome, Refused):
        return error(status_of(outcome.code, 409), outcome.code, outcome.message, **outcome.details)
    if isinstance(outcome, Unknown):
        return _unknown(outcome)
    return error(status_of(outcome.code, 503), outcome.code, outcome.message, **outcome.details)


def failure(e: EventfleetError) -> Answer:
    """What a caller is told of one of our errors: its class's ``code`` with that code's
    status, its message and its ``details()`` (a 429's ``retry_after_s`` becomes the edge's
    ``Retry-After``); 500 ``internal`` for an error no class names a code for."""
    return error(status_of(e.code, 500), e.code, str(e), **e.details())


def erasure_answer(outcome: Erased | Refused) -> Answer:
    """What an erase request is told (``workers.roles.personal.erase_subject``): 200 with the
    erasure, now or before (``already_erased``); a refusal (``not_found``) with its code's status.
    Also what the audit trail keeps of an erasure."""
    if isinstance(outcome, Refused):
        return answer_of(outcome)
    return Answer(
        200,
        {
            "subject": outcome.subject,
            "erased_at": utc_text(outcome.erased_at),
            "by": outcome.by,
            "keys_destroyed": outcome.keys_destroyed,
            "already_erased": outcome.already,
            "unreadable_everywhere_within_s": outcome.unreadable_within_s,
        },
    )


def reply_of(outcome: Outcome) -> bytes:
    """``outcome`` as a reply on ``commands.replies`` (what the appender tells a command the
    store refused, or whose event it dead-lettered)."""
    return answer_of(outcome).encode()


def answer_bytes(outcome: Outcome) -> tuple[int, bytes]:
    """``answer_of`` as a status and its JSON bytes; the common answer, a first 202 with its
    partition and offset, is written out directly (no dict, no general encoder)."""
    if (
        type(outcome) is Accepted
        and outcome.partition is not None
        and outcome.offset is not None
        and outcome.version is None
        and not outcome.duplicate
    ):
        return 202, (
            b'{"event_id":'
            + orjson.dumps(outcome.event_id)
            + b',"partition":'
            + str(outcome.partition).encode()
            + b',"offset":'
            + str(outcome.offset).encode()
            + b"}"
        )
    answer = answer_of(outcome)
    return answer.status, orjson.dumps(answer.body)


def _unknown(outcome: Unknown) -> Answer:
    """503 outcome_unknown: a write was sent without an answer; it may still be stored."""
    message = outcome.message
    if outcome.command_id is not None:
        message += (
            " Ask GET .../outcome?command_id=... for what became of it; retrying with the same "
            "command_id is safe."
        )
    else:
        message += (
            " Ask GET .../outcome?event_id=... for what became of it (it says unknown while it "
            "may still be stored); a retry without a command_id may store the event twice."
        )
    return error(
        503, "outcome_unknown", message, event_id=outcome.event_id, command_id=outcome.command_id
    )
