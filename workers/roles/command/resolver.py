"""Unknown outcomes resolved from the log: a produce sent and never answered is read back.

An event recorded unknown (``CommandMemory.unknown``) may still land while its producer holds
it or a stalled broker holds its request. Past the producer's delivery bound
(``LogProbe.delivery_bound_s``) the events topic itself is the witness: its partition is read
to an end the broker gave after it answered and then ran on for a grace
(``workers.adapters.kafka.probe``). A copy found there is ``accepted`` (the appender stores or
refuses it, as any accepted event); none found is ``not_stored``: no copy can land any more,
and sending it again is safe.

Any commands process may resolve, for any query: the log answers every process alike, and the
memory takes the answer only while the record is still that unknown attempt, old enough, and
no retry of its command holds the claim (``CommandMemory.resolve``), so resolving twice, from
two processes at once, or beside a retry, changes nothing more. A ``not_stored`` event's mark
is dropped, and its command's record with it: a retry with the command id sends it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from topics.envelope import aggregate_key, utc_now
from topics.errors import StreamUnavailable, Unavailable
from topics.jsonvalue import JsonObject
from workers.metrics import Metrics
from workers.ports import CommandMemory, CommandRecord, LogProbe, Marker
from workers.roles.outcomes import (
    NOT_STORED,
    NOT_STORED_MESSAGE,
    UNKNOWN_MESSAGE,
    Accepted,
    encode,
    encode_not_stored,
    not_stored_of,
)

log = logging.getLogger(__name__)


class UnknownResolver:
    """Reads the events topic for an event recorded unknown, once its delivery bound passed."""

    def __init__(
        self,
        *,
        probe: LogProbe,
        memory: CommandMemory,
        events_topic: str,
        marker: Marker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._probe = probe
        self._memory = memory
        self._topic = events_topic
        self._marker = marker
        self._metrics = metrics

    async def resolve(
        self, aggregate_type: str, aggregate_id: str, record: CommandRecord
    ) -> JsonObject:
        """The outcome query's body for an unknown event: ``accepted`` (with where it landed),
        ``not_stored``, or still ``unknown`` (with ``resolvable_in_s`` while the bound runs,
        or when Kafka cannot be read now)."""
        bound = self._probe.delivery_bound_s()
        event_id = record.event_id
        if bound is None or record.age_s is None:
            return _unknown(None)
        if record.age_s < bound:
            return _unknown(bound - record.age_s)
        key = aggregate_key(aggregate_type, aggregate_id)
        since = utc_now() - timedelta(seconds=record.age_s + bound)
        try:
            found = await self._probe.find(self._topic, key, event_id, since=since)
        except StreamUnavailable as e:
            log.info("unknown event %s not resolved now: %s", event_id, e)
            return _unknown(0.0)
        if found is not None:
            answer = encode(Accepted(event_id, found.partition, found.offset))
            await self._record(key, event_id, answer, answer, bound, "accepted")
            return {"outcome": "accepted", "partition": found.partition, "offset": found.offset}
        if not await self._record(
            key, event_id, encode_not_stored(event_id), None, bound, NOT_STORED
        ):
            if await self._resolved_elsewhere(key.decode(), event_id):
                return {"outcome": NOT_STORED, "message": NOT_STORED_MESSAGE}
            return _unknown(0.0)  # a newer attempt (a retry) since: its own outcome decides
        await self._unmark(key.decode(), event_id)
        return {"outcome": NOT_STORED, "message": NOT_STORED_MESSAGE}

    async def _record(
        self,
        key: bytes,
        event_id: str,
        answer: bytes,
        command_answer: bytes | None,
        bound: float,
        result: str,
    ) -> bool:
        try:
            resolved = await self._memory.resolve(
                key.decode(),
                event_id,
                answer=answer,
                command_answer=command_answer,
                min_age_s=bound,
            )
        except Unavailable as e:
            log.warning("resolution of event %s not recorded: %s", event_id, e)
            return False
        if resolved:
            log.info("unknown event %s resolved from the events topic: %s", event_id, result)
            if self._metrics is not None:
                self._metrics.unknowns_resolved.labels(result).inc()
        return resolved

    async def _resolved_elsewhere(self, key: str, event_id: str) -> bool:
        """Another process recorded ``not_stored`` first (the same log, the same answer)."""
        try:
            found = await self._memory.recall_event(key, event_id)
        except Unavailable:
            return False
        return found is not None and found.state == "answered" and not_stored_of(found.answer)

    async def _unmark(self, key: str, event_id: str) -> None:
        """A mark naming an event that will never be stored is dropped (only if it names it)."""
        if self._marker is None:
            return
        try:
            await self._marker.repair(key, event_id, None)
        except Unavailable as e:  # only a cache: the store judges what follows it anyway
            log.warning("mark of %s not dropped after %s was not stored: %s", key, event_id, e)


def _unknown(resolvable_in_s: float | None) -> JsonObject:
    body: JsonObject = {"outcome": "unknown", "message": UNKNOWN_MESSAGE}
    if resolvable_in_s is not None:
        body["resolvable_in_s"] = round(max(resolvable_in_s, 0.0), 1)
    return body
