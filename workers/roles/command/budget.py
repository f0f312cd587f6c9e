"""Write budgets: which bucket a write draws on, the refusal it gets over it, and Redis away.

A principal's budget is its own (by principal), else the largest of its roles', else the
default; none at all where that is a rate of 0, and none for a write without an actor (the
commands topic: no principal, inside the trust boundary, paced by its consumer). The buckets are
shared by every commands process (``WriteBudgets``, on Redis); an async write takes its token in
the marker's own round trip (``MarkRequest.budget``), a sync write in a call of its own. Over
budget, nothing is claimed, marked, produced or stored: ``429 too_many_writes`` with
``retry_after_s``, counted by principal.

A refusal tells its principal to wait whole seconds (``Retry-After``, at least 1). The process
remembers when the bucket has a write again: the principal's writes sent before that are
refused too, before intake and without Redis (no token can be there sooner: only time adds
them), each held a moment first (``HOLD_S``, bounded in number), so a client that ignores
``Retry-After`` is answered a few times a second per connection instead of as fast as it can
send. Its bucket refills meanwhile: a principal still gets its rate.

Redis away: an async write fails as the marker does (503). A sync write, which needs Redis for
nothing else without a command id, is judged by this process's own bucket of the same budget
(fail open to a per-process budget: a fleet of N processes lets a principal through N times
over while Redis is away), logged once per outage and counted; a probe finds Redis back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from topics.envelope import Actor
from topics.errors import MarkerUnavailable
from workers.metrics import PRINCIPAL_LABELS, Metrics
from workers.ports import Bucket, Budget, BudgetDraw, WriteBudgets, budget_table, take_token
from workers.roles.outcomes import Refused

if TYPE_CHECKING:
    from prometheus_client import Counter  # the metric children it caches

log = logging.getLogger(__name__)

MAX_REMEMBERED = 10_000
"""Refusal waits one process keeps at once (a principal's is forgotten when it ends)."""
MIN_WAIT_S = 0.05
"""A refused principal's writes are refused here for at least this long (its bucket refills
meanwhile: it still gets its rate, in slices of 50 ms instead of a write at a time; each write
it sends that reaches Redis empty-handed costs about as much as one accepted)."""
HOLD_S = 0.5
"""How long a write refused without asking Redis is held before it is answered, on average."""
MAX_HELD_PER_PRINCIPAL = 256
MAX_HELD = 4096
"""Refused writes one process holds at once: per principal, and in all."""


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """Whose budget is which: a principal's own, else the largest of its roles', else the
    default. None anywhere: no budget."""

    default: Budget | None
    principals: Mapping[str, Budget | None]
    roles: Mapping[str, Budget | None]

    @classmethod
    def parse(cls, per_s: int, burst: int, *, principals: str, roles: str) -> BudgetPolicy:
        """The policy of the settings: the default (a rate of 0: none) and the two tables
        (``name=rate[/burst],…``; ValueError naming a bad entry)."""
        return cls(
            default=Budget(per_s, burst) if per_s else None,
            principals=budget_table(principals),
            roles=budget_table(roles),
        )

    def of(self, actor: Actor) -> Budget | None:
        if actor.principal in self.principals:
            return self.principals[actor.principal]
        found = [self.roles[r] for r in actor.roles if r in self.roles]
        if not found:
            return self.default
        largest: Budget | None = None
        for budget in found:
            if budget is None:
                return None  # a role without a budget is the largest there is
            if largest is None or (budget.rate_per_s, budget.burst) > (
                largest.rate_per_s,
                largest.burst,
            ):
                largest = budget
        return largest


class WriteBudget:
    """The budget side of the command path: draws, refusals, and the fallback while Redis is
    away."""

    def __init__(
        self,
        *,
        policy: BudgetPolicy,
        budgets: WriteBudgets,
        metrics: Metrics,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._budgets = budgets
        self._metrics = metrics
        self._recheck_s = recheck_s
        self._clock = clock
        self._refused_until: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._held_total = 0
        self._labels: dict[str, Counter] = {}
        self._other: Counter | None = None
        self._local: dict[str, Bucket] = {}
        self._probe: asyncio.Task[None] | None = None
        """Runs while Redis is away: sync writes are judged locally until it finds Redis."""

    @property
    def judging_locally(self) -> bool:
        """Whether the buckets' backend is away and this process judges sync writes itself."""
        return self._probe is not None

    def draw(self, actor: Actor | None, writes: int = 1) -> BudgetDraw | None:
        """The draw of ``writes`` (an append across aggregates: one per event) on their
        principal's budget; None: no budget applies."""
        if actor is None:
            return None
        budget = self._policy.of(actor)
        return None if budget is None else BudgetDraw(actor.principal, budget, writes)

    def known_refusal(self, draw: BudgetDraw) -> Refused | None:
        """The refusal of a write sent before its principal's told wait ended (``hold`` it)."""
        until = self._refused_until.get(draw.principal)
        if until is None:
            return None
        wait_s = until - self._clock()
        if wait_s <= 0:
            del self._refused_until[draw.principal]
            return None
        return self._refused(draw, wait_s)

    async def hold(self, draw: BudgetDraw) -> None:
        """Hold a write refused by ``known_refusal`` for about ``HOLD_S`` (or until its bucket
        has a write, when later), before it is answered: a client that ignores ``Retry-After`` is
        answered a few times a second per connection, not as fast as it can send (refused at
        once, a flood still costs the process about half of what accepting it would). Past
        ``MAX_HELD_PER_PRINCIPAL`` held for the principal or ``MAX_HELD`` in all, answered at
        once."""
        until = self._refused_until.get(draw.principal)
        held = self._held.get(draw.principal, 0)
        if until is None or held >= MAX_HELD_PER_PRINCIPAL or self._held_total >= MAX_HELD:
            return
        self._held[draw.principal] = held + 1
        self._held_total += 1
        try:
            # The penalty itself, spread (half to one and a half HOLD_S) so that writes held
            # together do not come back together.
            held_s = HOLD_S * (0.5 + random.random())
            await asyncio.sleep(max(held_s, until - self._clock()))
        finally:
            self._held_total -= 1
            if self._held[draw.principal] == 1:
                del self._held[draw.principal]
            else:
                self._held[draw.principal] -= 1

    def refuse(self, draw: BudgetDraw, wait_ms: int) -> Refused:
        """A write over budget: its refusal; until its bucket has a write again (at least
        ``MIN_WAIT_S``), what its principal sends is refused here (``known_refusal``)."""
        if len(self._refused_until) >= MAX_REMEMBERED:
            now = self._clock()
            self._refused_until = {p: u for p, u in self._refused_until.items() if u > now}
            if len(self._refused_until) >= MAX_REMEMBERED:
                self._refused_until.clear()  # a flood of principals: remember afresh
        wait_s = max(wait_ms / 1000, MIN_WAIT_S)
        self._refused_until[draw.principal] = self._clock() + wait_s
        return self._refused(draw, wait_s)

    async def take(self, draw: BudgetDraw) -> Refused | None:
        """Take one write on the shared bucket (a sync write); its refusal, or None to go on.

        Redis not answering: this process's own bucket judges, until a probe finds Redis."""
        if self._probe is not None:
            return self._take_locally(draw)
        try:
            wait_ms = await self._budgets.take(draw)
        except MarkerUnavailable as e:
            self._went_away(e)
            return self._take_locally(draw)
        return self.refuse(draw, wait_ms) if wait_ms else None

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe

    def _take_locally(self, draw: BudgetDraw) -> Refused | None:
        now_ms = int(self._clock() * 1000)
        bucket, wait_ms = take_token(
            self._local.get(draw.principal), draw.budget, now_ms, draw.writes
        )
        if not wait_ms:
            self._local[draw.principal] = bucket
        self._metrics.write_budget_local.labels("refused" if wait_ms else "taken").inc()
        return self.refuse(draw, wait_ms) if wait_ms else None

    def _went_away(self, e: MarkerUnavailable) -> None:
        if self._probe is not None:
            return
        log.warning(
            "write budgets: Redis did not answer (%s); sync writes are judged by this process's "
            "own buckets until it does (a fleet of N processes admits up to N budgets)",
            e,
        )
        self._local.clear()  # a fresh bucket each outage: full, as a forgotten one
        self._probe = asyncio.get_running_loop().create_task(self._until_back())

    async def _until_back(self) -> None:
        while True:
            if await self._budgets.ping():
                break
            await asyncio.sleep(self._recheck_s)  # a ping waits its own timeout first
        log.warning("write budgets: Redis answers again; the fleet's buckets judge again")
        self._probe = None

    def _refused(self, draw: BudgetDraw, wait_s: float) -> Refused:
        self._counter(draw.principal).inc()
        retry_after_s = max(1, math.ceil(wait_s))
        budget = draw.budget
        message = (
            f"principal {draw.principal[:200]!r} is over its write budget of "
            f"{budget.rate_per_s} writes a second (bursts of {budget.burst}); nothing was "
            f"written. Retry in {retry_after_s} s, or ask an operator for a larger budget "
            "(EVENTFLEET_WRITE_BUDGET_PRINCIPALS or EVENTFLEET_WRITE_BUDGET_ROLES)."
        )
        details = {
            "retry_after_s": retry_after_s,
            "rate_per_s": budget.rate_per_s,
            "burst": budget.burst,
        }
        return Refused("too_many_writes", message, details)

    def _counter(self, principal: str) -> Counter:
        """The principal's child of the refusals counter: its own for the first
        ``PRINCIPAL_LABELS`` principals, ``other`` after them (a bounded label)."""
        child = self._labels.get(principal)
        if child is not None:
            return child
        if len(self._labels) < PRINCIPAL_LABELS:
            child = self._labels[principal] = self._metrics.write_budget_refusals.labels(principal)
            return child
        if self._other is None:
            self._other = self._metrics.write_budget_refusals.labels("other")
        return self._other
