"""What an append across aggregates (``POST /v1/appends``) is told: its outcome as a status and
body, beside ``answers`` (which it defers to for every refusal)."""

from __future__ import annotations

from topics.jsonvalue import Json, JsonObject
from workers.roles.outcomes import MultiOutcome, StoredAll, UnknownAll
from workers.runtime.answers import Answer, answer_of, error

__all__ = ["answer_of_all"]


def answer_of_all(outcome: MultiOutcome) -> Answer:
    """The status and body of an append across aggregates: 201 with every event (its aggregate,
    id and version, in the request's order), or an error as ``answer_of`` gives it."""
    if isinstance(outcome, StoredAll):
        events: list[Json] = [
            {
                "aggregate_type": i.aggregate_type,
                "aggregate_id": i.aggregate_id,
                "event_id": i.event_id,
                "version": i.version,
            }
            for i in outcome.items
        ]
        body: JsonObject = {"events": events}
        if outcome.duplicate:
            body["duplicate"] = True
        else:
            body["published"] = outcome.published
        return Answer(201, body)
    if isinstance(outcome, UnknownAll):
        retry = (
            " Retrying with the same command_id is safe: it is answered the stored events."
            if outcome.command_id is not None
            else " Without a command_id a retry may store them twice: read the aggregates first."
        )
        ids: list[Json] = list(outcome.event_ids)
        return error(
            503,
            "outcome_unknown",
            f"{outcome.message}{retry}",
            event_ids=ids,
            command_id=outcome.command_id,
        )
    return answer_of(outcome)
