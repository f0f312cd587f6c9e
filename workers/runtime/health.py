"""Dependency health, checked in the background: probes and /metrics read it, never wait on it.

Each dependency a process uses is pinged every ``EVENTFLEET_HEALTH_INTERVAL_S``, each ping
bounded by that dependency's own timeout. A probe only reads the last result, so it answers
at once whatever a dependency does (paused, black-holed, slow). Dependency health is
reported, not used for readiness: a Redis or MongoDB blip must not empty a Service or block
node drains behind PodDisruptionBudgets; the roles answer 503 or pause and retry instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from workers.metrics import Metrics
from workers.secrets import redact

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Check:
    """The last result of one dependency's health check."""

    ok: bool
    checked_at: float  # time.time() of the check's end
    detail: str  # a sentence, never a driver's internals


class HealthMonitor:
    """Pings each dependency in turn, in one background task; ``snapshot()`` never waits."""

    def __init__(
        self,
        pings: Mapping[str, tuple[Ping, float]],
        metrics: Metrics,
        *,
        role: str,
        interval_s: float,
    ) -> None:
        self._pings = dict(pings)  # service -> (ping, timeout_s)
        self._metrics = metrics
        self._role = role
        self._interval_s = interval_s
        self._results: dict[str, Check] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventfleet-health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every dependency's last check, with its age in seconds (empty before the first)."""
        now = time.time()
        return {
            service: {
                "ok": check.ok,
                "age_s": round(now - check.checked_at, 3),
                "detail": check.detail,
            }
            for service, check in sorted(self._results.items())
        }

    async def check_all(self) -> None:
        """Check every dependency once, concurrently, each within its own timeout."""
        await asyncio.gather(*(self._check(s, p, t) for s, (p, t) in self._pings.items()))

    async def _run(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self._interval_s)

    async def _check(self, service: str, ping: Ping, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await ping()
        except TimeoutError:
            check = Check(False, time.time(), f"{service} did not answer within {timeout_s:g} s.")
        except Exception as e:  # any failure of a ping is an unhealthy dependency
            log.info("health check of %s failed: %s", service, redact(repr(e)))
            check = Check(False, time.time(), f"{service} refused the health check.")
        else:
            check = Check(True, time.time(), f"{service} answered.")
        if check.ok != self._results.get(service, check).ok:
            log.warning("%s is now %s", service, "reachable" if check.ok else "unreachable")
        self._results[service] = check
        self._metrics.dependency_up.labels(self._role, service).set(1 if check.ok else 0)
