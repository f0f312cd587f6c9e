"""The command side's door: a request taken in once, then answered by its domain's mode.

Transport-neutral: the HTTP view and the ``commands`` topic agent both call
``CommandDispatcher.handle`` and get an ``Outcome`` (``workers.roles.outcomes``); the runtime
turns it into a status. The request is taken in once (``intake``: the domain's access rule,
its data, its ids, its personal fields sealed), then answered by its domain's mode:
``AsyncCommandService`` (mark, then produce) or ``SyncCommandService`` (validate on state,
store), each drawing the write from its principal's budget first (``budget``). What either
raises is translated here, once, into the outcome a caller is told.

Every answer is true. ``NotDone`` means nothing was written; ``Unknown`` that a write was sent
without an answer (it may still be stored). With a ``command_id`` the event id is derived from
(aggregate, command id), so retrying the same command is always safe, and the retry is told
what became of it: accepted, stored, refused at the store, or still unknown.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from snapshot_rules.domain import Domain, Domains, Mode
from topics.envelope import command_scope
from topics.errors import UnknownAggregateType
from workers import tracing
from workers.metrics import Metrics
from workers.ports import BudgetDraw
from workers.roles.command.async_mode import AsyncCommandService
from workers.roles.command.budget import WriteBudget
from workers.roles.command.intake import Intake
from workers.roles.command.ledger import CommandLedger
from workers.roles.command.multi_mode import MultiCommands
from workers.roles.command.multi_requests import MultiRequest
from workers.roles.command.requests import CommandRequest
from workers.roles.command.sync_mode import SyncCommandService
from workers.roles.command.told import ANSWERED, outcome_of
from workers.roles.outcomes import MultiOutcome, Outcome, Refused, label

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram  # the metric children it caches


class CommandDispatcher:
    """Answers append requests for every enabled domain, in its mode; counts each answer."""

    def __init__(
        self,
        *,
        domains: Domains,
        intake: Intake,
        ledger: CommandLedger,
        metrics: Metrics,
        async_mode: AsyncCommandService,
        sync_mode: SyncCommandService | None = None,
        budget: WriteBudget | None = None,
    ) -> None:
        self._domains = domains
        self._intake = intake
        self._ledger = ledger
        self._metrics = metrics
        self._async = async_mode
        self._sync = sync_mode
        self._budget = budget
        self._labels: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._many = MultiCommands(
            domains=domains,
            intake=intake,
            metrics=metrics,
            budget=budget,
            appender=None if sync_mode is None else sync_mode.appender,
        )

    async def handle_many(self, request: MultiRequest) -> MultiOutcome:
        """An append across aggregates (``multi_mode``): all of its events stored, or none."""
        return await self._many.handle(request)

    async def handle(self, request: CommandRequest) -> Outcome:
        started = time.perf_counter()
        outcome: Outcome
        try:  # in this one frame: every suspension of the request resumes through it
            domain = self._domains.get(request.aggregate_type)
            draw, known = self._budget_of(request)
            if domain.mode is Mode.STORAGE:  # an appended event would change no document
                outcome = Refused("read_only", _read_only(domain))
            elif known is not None:
                assert self._budget is not None and draw is not None
                await self._budget.hold(draw)  # until the wait it was told ends
                outcome = known
            else:
                command = await self._intake.command(domain, request)
                if domain.mode is Mode.SYNC:
                    outcome = await self._sync_service(domain).append(command, draw)
                else:
                    outcome = await self._async.append(command, draw)
        except ANSWERED as e:
            outcome = outcome_of(e)
        if isinstance(outcome, Refused) and request.command_id is not None:
            await self._remember_refusal(request, request.command_id, outcome)
        requests, latency = self._children(request, label(outcome))
        requests.inc()
        latency.observe(time.perf_counter() - started, tracing.exemplar())
        return outcome

    def _budget_of(self, request: CommandRequest) -> tuple[BudgetDraw | None, Refused | None]:
        """The write's draw on its principal's budget (None: no budget applies), and its
        refusal when the principal was refused moments ago and is still to wait (then the
        request costs no intake and no Redis, and is held until that wait ends)."""
        if self._budget is None:
            return None, None
        draw = self._budget.draw(request.actor)
        if draw is None:
            return None, None
        return draw, self._budget.known_refusal(draw)

    def _sync_service(self, domain: Domain) -> SyncCommandService:
        if self._sync is None:
            raise UnknownAggregateType(
                f"{domain.name} is a sync domain; this process has no sync service."
            )
        return self._sync

    async def _remember_refusal(
        self, request: CommandRequest, command_id: str, outcome: Refused
    ) -> None:
        """A refusal at the door, kept under the sender's command id for the outcome query.

        Not a retry told a recorded answer, a refusal at the store (the appender records it),
        a command still in progress, a replay failure (nothing the caller did: a retry may
        pass), a write over its budget (a retry after the wait may pass; nor does a flood get
        a Redis write per refusal), nor a type this fleet does not serve (no aggregate to ask
        about).
        """
        if outcome.duplicate or outcome.at_store or outcome.code in _NOT_REMEMBERED:
            return
        if request.aggregate_type not in self._domains:
            return
        await self._ledger.refused(request.key, command_scope(command_id, request.actor), outcome)

    def _children(self, request: CommandRequest, outcome: str) -> tuple[Counter, Histogram]:
        """The metric children of one (domain, event type, outcome), cached: labels() is slow."""
        key = (request.aggregate_type, request.type, outcome)
        children = self._labels.get(key)
        if children is None:
            domain = (
                request.aggregate_type if request.aggregate_type in self._domains else "unknown"
            )
            event_type = request.type
            if domain == "unknown" or event_type not in self._domains.get(domain).events:
                event_type = "unknown"
            mode = self._domains.get(domain).mode.value if domain != "unknown" else "none"
            children = (
                self._metrics.requests.labels(domain, event_type, outcome),
                self._metrics.command_latency.labels(domain, mode),
            )
            self._labels[key] = children
        return children


_NOT_REMEMBERED = frozenset({"command_in_progress", "replay_failed", "too_many_writes"})


def _read_only(domain: Domain) -> str:
    return (
        f"{domain.name} documents change only through EventSourcedStorage; use its "
        "find_one_and_upsert, find_one_and_update or delete_one, and the "
        f"{', '.join(domain.events)} events reach events.stored by themselves."
    )
