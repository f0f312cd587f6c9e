"""Appends across aggregates: a request naming an event for each of several sync aggregates,
stored in one transaction (all or none) and published in one produce.

Transport-neutral, as the single append's door (``commands``): every item is checked first,
in order, and the first that fails answers for the whole request, naming its index: a type no
domain serves (404), a storage domain (405 ``read_only``), an async domain (422
``async_domain``: its events are stored by the appender after Kafka, one at a time, so no
transaction can hold them with others), its event type, the domain's access rule for the
door's principal (403), its data. Then the principal's budget gives one write per item, at
once; then the sync appender stores every item's event on its aggregate's state and its own
expected version, or refuses all. One command id names the whole request: each event's id
derives from it and its aggregate (as a single append's would), so a retry is told the stored
events as a duplicate, and ``GET …/outcome?command_id=`` answers for each aggregate.
"""

from __future__ import annotations

import time

from snapshot_rules.domain import Domain, Domains, Mode
from topics.errors import (
    CommandReused,
    EventfleetError,
    OutcomeUnknown,
    TransactionsUnsupported,
)
from workers import tracing
from workers.metrics import Metrics
from workers.ports import AppendItem, RefusedItem, SyncAppender, SyncResults
from workers.roles.command.budget import WriteBudget
from workers.roles.command.intake import Command, Intake
from workers.roles.command.multi_requests import MultiRequest
from workers.roles.command.requests import CommandRequest
from workers.roles.command.told import ANSWERED, outcome_of
from workers.roles.outcomes import (
    MultiOutcome,
    NotDone,
    Refused,
    StoredAll,
    StoredItem,
    UnknownAll,
)

MODE = "multi"
"""The ``mode`` label of the command latency of appends across aggregates."""


class MultiCommands:
    """Answers appends across aggregates for the enabled sync domains; counts each item."""

    def __init__(
        self,
        *,
        domains: Domains,
        intake: Intake,
        appender: SyncAppender | None,
        metrics: Metrics,
        budget: WriteBudget | None = None,
    ) -> None:
        self._domains = domains
        self._intake = intake
        self._appender = appender
        self._metrics = metrics
        self._budget = budget

    async def handle(self, request: MultiRequest) -> MultiOutcome:
        started = time.perf_counter()
        outcome: MultiOutcome
        try:
            outcome = (
                self._unfit(request)
                or await self._over_budget(request)
                or await self._appended(request)
            )
        except RefusedItem as e:
            outcome = refused_item(e.index, request.items[e.index], e.error)
        except _Unanswered as e:
            outcome = e.outcome
        except (CommandReused, TransactionsUnsupported, *ANSWERED) as e:
            outcome = outcome_of(e)
        self._count(request, outcome, time.perf_counter() - started)
        return outcome

    def _unfit(self, request: MultiRequest) -> Refused | NotDone | None:
        """The refusal of the first item whose aggregate type no sync domain serves."""
        for index, item in enumerate(request.items):
            try:
                domain = self._domains.get(item.aggregate_type)
            except EventfleetError as e:
                raise RefusedItem(index, e) from e
            if domain.mode is Mode.STORAGE:
                message = (
                    f"{domain.name} is a storage domain: its documents change only through "
                    "EventSourcedStorage; nothing was written."
                )
                return _placed(index, item, Refused("read_only", message))
            if domain.mode is not Mode.SYNC or self._appender is None:
                return _placed(index, item, Refused("async_domain", _async_message(domain)))
        return None

    async def _over_budget(self, request: MultiRequest) -> Refused | None:
        """The refusal of the principal's budget for one write per item, taken at once."""
        if self._budget is None:
            return None
        draw = self._budget.draw(request.actor, writes=len(request.items))
        if draw is None:
            return None
        if draw.writes > draw.budget.burst:  # never there at once: no wait would help
            return Refused(
                "bad_request",
                (
                    f"the request names {draw.writes} events and its principal may write at most "
                    f"{draw.budget.burst} at once (its budget's burst): send at most that many "
                    "items, or ask an operator for a larger burst."
                ),
            )
        known = self._budget.known_refusal(draw)
        if known is not None:
            await self._budget.hold(draw)
            return known
        return await self._budget.take(draw)

    async def _appended(self, request: MultiRequest) -> StoredAll:
        commands: list[Command] = []
        for index, item in enumerate(request.items):
            domain = self._domains.get(item.aggregate_type)  # served: _unfit said so
            try:
                commands.append(await self._intake.command(domain, item))
            except EventfleetError as e:  # its event type, the access rule, its data
                raise RefusedItem(index, e) from e
        assert self._appender is not None  # _domain_of refused every item otherwise
        items = [
            AppendItem(
                c.domain,
                c.request.aggregate_id,
                c.request.type,
                c.request.data,
                c.event_id,
                c.request.expected_version,
            )
            for c in commands
        ]
        try:
            result = await self._appender.append_many(
                items, commands[0].metadata(), data_checked=True
            )
        except OutcomeUnknown as e:
            ids = tuple(c.event_id for c in commands)
            raise _Unanswered(UnknownAll(ids, request.command_id, str(e), e.service)) from e
        return stored_all(result)

    def _count(self, request: MultiRequest, outcome: MultiOutcome, elapsed_s: float) -> None:
        """Each item's request, with the whole request's outcome; the latency once."""
        label = _label(outcome)
        names = [(item.aggregate_type, item.type) for item in request.items]
        for aggregate_type, event_type in names:
            known = aggregate_type in self._domains
            if not known or event_type not in self._domains.get(aggregate_type).events:
                event_type = "unknown"
            domain = aggregate_type if known else "unknown"
            self._metrics.requests.labels(domain, event_type, label).inc()
        first = names[0][0] if names[0][0] in self._domains else "unknown"
        self._metrics.command_latency.labels(first, MODE).observe(elapsed_s, tracing.exemplar())


class _Unanswered(Exception):
    """The commit went unanswered: the outcome that says so, with the request's event ids."""

    def __init__(self, outcome: UnknownAll) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def refused_item(index: int, item: CommandRequest, error: EventfleetError) -> MultiOutcome:
    """What refused one item, as the whole request's answer: its index and aggregate named."""
    if not isinstance(error, ANSWERED):
        raise error  # not a refusal of the item: what the request's handling raises
    return _placed(index, item, outcome_of(error))


def _placed(index: int, item: CommandRequest, found: Refused | NotDone) -> Refused | NotDone:
    """``found`` naming the item: its index and aggregate, in the message and the details."""
    where = {
        "item": index,
        "aggregate_type": item.aggregate_type,
        "aggregate_id": item.aggregate_id,
    }
    message = f"appends[{index}] ({item.aggregate_type} {item.aggregate_id}): {found.message}"
    if isinstance(found, NotDone):
        return NotDone(found.code, message, found.service, {**found.details, **where})
    return Refused(found.code, message, {**found.details, **where})


def stored_all(result: SyncResults) -> StoredAll:
    items = tuple(
        StoredItem(e.aggregate_type, e.aggregate_id, e.id, e.version or 0) for e in result.events
    )
    return StoredAll(items, result.published, result.duplicate)


def _async_message(domain: Domain) -> str:
    return (
        f"{domain.name} is an {domain.mode.value} domain: its events are stored by the "
        "appender after Kafka, one aggregate at a time, so no transaction can hold them with "
        "others; nothing was written. Send its event on its own "
        f"(POST /v1/{domain.name}/{{id}}/events, with a command id) once the sync ones are "
        "stored, or let a consumer of their stored events send it (see the guide on appends "
        "across aggregates)."
    )


def _label(outcome: MultiOutcome) -> str:
    if isinstance(outcome, StoredAll):
        return "duplicate" if outcome.duplicate else "accepted"
    if isinstance(outcome, Refused):
        return f"rejected_{outcome.code}"
    if isinstance(outcome, UnknownAll):
        return f"unknown_{outcome.service}"
    return f"error_{outcome.service}"
