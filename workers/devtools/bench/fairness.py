"""``bench fairness``: one principal floods the commands role; does another's write slow down?

Two commands-role processes on one stack, each behind its own port, over HTTP from outside (so
the row keeps measuring whatever serves HTTP): one without write budgets, one with them. Tokens
for two principals, ``flood`` and ``quiet``, come from a signing key of the run's own
(``DevIdentity``). First the capacity: the flood alone on the process without budgets, as fast
as it answers (64 connections), counting 2xx. The budgets are the environment's
(``EVENTFLEET_WRITE_BUDGET_*``) when it sets them, else a tenth of that capacity for every
principal (the quiet one's 5% within it). Then, per round and per process (alternating which
goes first): the quiet principal writes at 5% of the capacity alone, then again while the flood
posts at the capacity (its wrk runs a second before the quiet one starts). Each write is a new
order (``OrderPlaced``).

The row prints the quiet principal's p99 alone and beside the flood (2xx answers only, timed
around each request), their ratio (target: at most 2x, with none of the quiet writes refused),
the quiet principal's answers that were not 2xx, and the flood's 2xx and 429 a second.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from workers.devtools.bench.measure import Spread, aligned, load_average
from workers.devtools.bench.paced import Answered, Load, paced, running
from workers.devtools.bench.procs import PLACED, Server, all_ready, worker
from workers.devtools.bench.progress import step
from workers.devtools.dev_identity import DEV_AUDIENCE, DEV_ISSUER, DevIdentity
from workers.runtime.settings import Settings

QUIET_SHARE = 0.05
"""The quiet principal writes at this share of the capacity."""
FLOOD_CONNECTIONS = 64
QUIET_CONNECTIONS = 2
WARM_UP_S = 1.0
TARGET_RATIO = 2.0


@dataclass(frozen=True, slots=True)
class Round:
    """One round on one process: the quiet principal alone, then beside the flood."""

    alone: Answered
    beside: Answered
    flood: Answered

    @property
    def ratio(self) -> float | None:
        if not (self.alone.p99_ms and self.beside.p99_ms):
            return None
        return self.beside.p99_ms / self.alone.p99_ms


@dataclass(slots=True)
class Side:
    """One process's rounds: ``off`` without budgets, ``on`` with the settings'."""

    name: str
    budget: str
    rounds: list[Round] = field(default_factory=list)

    def median(self) -> Round:
        ordered = sorted(self.rounds, key=lambda r: r.ratio or 0.0)
        return ordered[len(ordered) // 2]

    @property
    def spread(self) -> Spread | None:
        return Spread.of([r.ratio for r in self.rounds if r.ratio is not None])


@dataclass(slots=True)
class Fairness:
    """The fairness row: the quiet principal's p99 alone and beside the flood, per process."""

    title: str
    capacity_per_s: float
    quiet_per_s: float
    sides: list[Side]

    def render(self) -> str:
        header = (
            "  budget",
            "quiet p99 alone",
            "beside the flood",
            "ratio (min/med/max)",
            "quiet non-2xx",
            "flood 2xx/s",
            "flood 429/s",
            "target",
        )
        lines = [header]
        for side in self.sides:
            m, spread = side.median(), side.spread
            met = "" if spread is None else ("met" if _met(side) else "NOT met")
            lines.append(
                (
                    f"  {side.name} ({side.budget})",
                    _ms(m.alone.p99_ms),
                    _ms(m.beside.p99_ms),
                    str(spread) if spread else "",
                    str(_not_2xx(side)),
                    f"{m.flood.ok_per_s:,.0f}",
                    f"{m.flood.refused_per_s:,.0f}",
                    f"p99 <= {TARGET_RATIO:g}x: {met}" if side.name == "on" else "",
                )
            )
        return "\n".join([self.title, *[r.rstrip() for r in aligned(lines)]])

    def as_dicts(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for side in self.sides:
            m, spread = side.median(), side.spread
            out.append(
                {
                    "row": f"fairness, budget {side.name}",
                    "budget": side.budget,
                    "capacity_per_s": round(self.capacity_per_s, 1),
                    "quiet_per_s": round(self.quiet_per_s, 1),
                    "rounds": len(side.rounds),
                    "quiet_p99_alone_ms": m.alone.p99_ms,
                    "quiet_p99_beside_flood_ms": m.beside.p99_ms,
                    "ratio": spread.as_dict() if spread else None,
                    "quiet_not_2xx": _not_2xx(side),
                    "flood_2xx_per_s": round(m.flood.ok_per_s, 1),
                    "flood_429_per_s": round(m.flood.refused_per_s, 1),
                    "target": f"p99 <= {TARGET_RATIO:g}x",
                    "target_met": None if spread is None or side.name != "on" else _met(side),
                }
            )
        return out


async def bench_fairness(
    env: Mapping[str, str], settings: Settings, *, count: int, rounds: int
) -> Fairness:
    """The fairness row on the stack ``env`` names (``worker_env``), budgets from ``settings``
    when the environment sets them, else a tenth of the capacity measured."""
    with tempfile.TemporaryDirectory(prefix="eventfleet-fairness-") as tmp:
        identity = DevIdentity(Path(tmp), settings)
        tokens = {who: identity.token(who, roles=()) for who in ("flood", "quiet")}
        auth = {
            "EVENTFLEET_AUTH": "jwt",
            "EVENTFLEET_AUTH_JWKS": str(identity.jwks_path),
            "EVENTFLEET_AUTH_ISSUER": DEV_ISSUER,
            "EVENTFLEET_AUTH_AUDIENCE": DEV_AUDIENCE,
        }
        step("fairness: starting a commands process without budgets")
        without = {**env, **auth, "EVENTFLEET_WRITE_BUDGET_PER_S": "0"}
        async with worker("off", "commands", without) as off:
            await all_ready([off], "/readyz")
            step(f"fairness: the capacity, the flood alone without budgets ({count} writes)")
            flood = Load(tokens["flood"], 0, FLOOD_CONNECTIONS)
            capacity = (await paced(off.url, flood, run=_run(), body=PLACED, count=count)).ok_per_s
            budget, shown = _budget(settings, capacity)
            step(f"fairness: starting a commands process with budgets ({shown})")
            async with worker("on", "commands", {**env, **auth, **budget}) as on:
                await all_ready([off, on], "/readyz")
                plan = _Plan(tokens, capacity, max(200, count // 20), rounds)
                sides = await _measure(off, on, plan, shown)
    title = (
        f"fairness: a quiet principal's writes at {QUIET_SHARE:.0%} of the commands role's "
        f"capacity ({capacity:,.0f}/s, {FLOOD_CONNECTIONS} conn, flood alone), alone and "
        f"beside a flood at that capacity; {plan.quiet_count} quiet writes a measurement, "
        f"{rounds} rounds alternating; wrk; {load_average()}"
    )
    return Fairness(title, capacity, plan.quiet_per_s, sides)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What each round runs: both principals' tokens, the capacity, the quiet writes' count."""

    tokens: Mapping[str, str]
    capacity_per_s: float
    quiet_count: int
    rounds: int

    @property
    def quiet_per_s(self) -> float:
        return max(1.0, self.capacity_per_s * QUIET_SHARE)


async def _measure(off: Server, on: Server, plan: _Plan, shown: str) -> list[Side]:
    quiet = Load(plan.tokens["quiet"], plan.quiet_per_s, QUIET_CONNECTIONS, measure=True)
    flood = Load(plan.tokens["flood"], plan.capacity_per_s, FLOOD_CONNECTIONS)
    sides = {"off": Side("off", "none"), "on": Side("on", shown)}
    for r in range(plan.rounds):
        for target in (off, on) if r % 2 == 0 else (on, off):
            step(
                f"fairness: round {r + 1} of {plan.rounds}, budget {target.name}: "
                f"{plan.quiet_count} quiet writes at {plan.quiet_per_s:,.0f}/s, alone then "
                f"beside {plan.capacity_per_s:,.0f}/s of flood"
            )
            sides[target.name].rounds.append(await _round(target, quiet, flood, plan.quiet_count))
    return list(sides.values())


async def _round(target: Server, quiet: Load, flood: Load, count: int) -> Round:
    alone = await paced(target.url, quiet, run=_run(), body=PLACED, count=count)
    async with running(target.url, flood, run=_run(), body=PLACED) as flooded:
        # The flood reaches its pace before the quiet principal starts (a bench's settling,
        # not a test's synchronisation).
        await _settle()
        beside = await paced(target.url, quiet, run=_run(), body=PLACED, count=count)
    return Round(alone, beside, flooded.answered)


async def _settle() -> None:
    await asyncio.sleep(WARM_UP_S)


BUDGET_SETTINGS = frozenset(
    {"write_budget_per_s", "write_budget_burst", "write_budget_principals", "write_budget_roles"}
)
SIZED_SHARE = 0.1
"""Without budgets in the environment, the flood's (and the quiet one's) budget: this share of
the capacity measured (the quiet principal's 5% is within it)."""


def _budget(settings: Settings, capacity_per_s: float) -> tuple[dict[str, str], str]:
    """The budget settings of the process with budgets, and how the row shows them."""
    if settings.explicit & BUDGET_SETTINGS:
        env = {
            "EVENTFLEET_WRITE_BUDGET_PER_S": str(settings.write_budget_per_s),
            "EVENTFLEET_WRITE_BUDGET_BURST": str(settings.write_budget_burst),
            "EVENTFLEET_WRITE_BUDGET_PRINCIPALS": settings.write_budget_principals,
            "EVENTFLEET_WRITE_BUDGET_ROLES": settings.write_budget_roles,
        }
        per_s, burst = settings.write_budget_per_s, settings.write_budget_burst
        return env, f"{per_s}/s, bursts of {burst}, from the environment"
    per_s = max(1, round(capacity_per_s * SIZED_SHARE))
    env = {
        "EVENTFLEET_WRITE_BUDGET_PER_S": str(per_s),
        "EVENTFLEET_WRITE_BUDGET_BURST": str(2 * per_s),
    }
    return env, f"{per_s}/s, bursts of {2 * per_s}: {SIZED_SHARE:.0%} of the capacity"


def _met(side: Side) -> bool:
    """The quiet principal's p99 beside the flood within 2x of alone, none of it refused."""
    spread = side.spread
    return spread is not None and spread.mid <= TARGET_RATIO and _not_2xx(side) == 0


def _not_2xx(side: Side) -> int:
    return sum(
        r.alone.other
        + r.alone.refused
        + r.beside.other
        + r.beside.refused
        + r.alone.socket_errors
        + r.beside.socket_errors
        for r in side.rounds
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}ms"


def _run() -> str:
    return f"f{uuid.uuid4().hex[:8]}"
