"""Retry policies, run by stamina: how many tries within how long, and the waits between them.

A retry in the fleet is a ``Backoff`` named where it is used (``DEPENDENCY_PAUSES``, a bus's
``RetryPolicy``, a command's wait for another request's claim), never a loop of its own:
stamina runs the tries, so its retry hooks (a log line and ``stamina_retries_total`` per
retry) and ``stamina.set_testing`` apply to every one of them. A loop that must go on whatever
fails (a bus subscription's reads) is ``keep_running`` over such a ``Backoff``.

One pause is not stamina's: the live feed's reconnects (``workers.adapters.redis.live``), whose
waits start over once a connection has subscribed, in the middle of what would be one try.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import stamina

from topics.errors import ConfigError

T = TypeVar("T")
On = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool | float]
"""What is retried: an error class (or several), or a hook that judges one (True: retry it)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """At most ``attempts`` tries (None: no bound) and no new one after ``timeout_s`` (None: no
    bound); after failed try n a wait of ``first_s * 2**(n-1)``, at most ``max_s``, plus up to
    ``jitter_s`` at random (none by default: the waits are the ones stated).

    ``full_jitter``: the wait is drawn at random up to that bound instead ("full jitter": writers
    that collided spread out, rather than all coming back after the same wait).
    ``strict_timeout``: no wait is begun that would end past ``timeout_s`` (the last error is
    raised instead). Both only with ``on`` an error class or classes.
    """

    first_s: float
    max_s: float
    attempts: int | None = None
    timeout_s: float | None = None
    jitter_s: float = 0.0
    full_jitter: bool = False
    strict_timeout: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ConfigError(
                f"a backoff needs 0 < first_s <= max_s; got first_s={self.first_s}, "
                f"max_s={self.max_s}."
            )
        if self.attempts is not None and self.attempts < 1:
            raise ConfigError(f"a backoff's attempts is {self.attempts}; it must be at least 1.")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"a backoff's timeout_s is {self.timeout_s}; it must be positive.")
        if self.jitter_s < 0:
            raise ConfigError(f"a backoff's jitter_s is {self.jitter_s}; it must not be negative.")

    def tries(self, on: On) -> AsyncIterable[stamina.Attempt]:
        """The tries of one run, from now: ``async for attempt in ...: with attempt: ...``.

        An error ``on`` does not take is raised at once; the last one ``on`` takes is raised
        when the tries are spent. ``attempt.next_wait`` is the wait after this try if it fails.
        """
        if self.full_jitter or self.strict_timeout:
            if not isinstance(on, type | tuple):
                raise ConfigError("this backoff judges its waits: give it error classes to retry.")
            on = self._judge(on)
        return stamina.retry_context(
            on,
            attempts=self.attempts,
            timeout=self.timeout_s,
            wait_initial=self.first_s,
            wait_max=self.max_s,
            wait_jitter=self.jitter_s,
        )

    async def call(
        self,
        work: Callable[[int], Awaitable[T]],
        on: type[Exception] | tuple[type[Exception], ...],
        *,
        retrying: Callable[[Exception, stamina.Attempt], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> T:
        """``work(try number)`` on these tries, as ``async for attempt in tries(on)`` would run it,
        but the first try is made before stamina is asked: a run of stamina (and the tenacity
        under it) costs about a fifth of a command's CPU, and nearly every first try succeeds.
        ``retrying`` is told each error ``on`` takes, with its try (``next_wait``: the wait after
        it). A ``timeout_s`` counts from the first try (on ``monotonic``): stamina is given what is
        left of it."""
        started = monotonic()
        try:
            return await work(1)
        except on as e:
            first: Exception = e
        rest = self
        if self.timeout_s is not None:
            left = self.timeout_s - (monotonic() - started)
            if left <= 0:
                raise first  # the first try took the whole time: no other is begun
            rest = replace(self, timeout_s=left)
        async for attempt in rest.tries(on):
            with attempt:
                try:
                    if attempt.num == 1:  # the try made above
                        raise first
                    return await work(attempt.num)
                except on as e:
                    if retrying is not None:
                        retrying(e, attempt)
                    raise
        raise AssertionError("stamina ended its tries without an answer or an error")

    def _judge(
        self, on: type[Exception] | tuple[type[Exception], ...]
    ) -> Callable[[Exception], bool | float]:
        """stamina's backoff hook for one run: False (raise the error) or the wait to take."""
        failed, started = 0, time.monotonic()

        def judge(error: Exception) -> bool | float:
            nonlocal failed
            if not isinstance(error, on):
                return False
            failed += 1
            bound = min(self.max_s, self.first_s * 2 ** min(failed - 1, 62))
            wait_s = random.uniform(0, bound) if self.full_jitter else bound
            if self.strict_timeout and self.timeout_s is not None:
                if time.monotonic() - started + wait_s >= self.timeout_s:
                    return False
            return wait_s

        return judge


async def keep_running(
    step: Callable[[], Awaitable[object]],
    backoff: Backoff,
    *,
    failed: Callable[[Exception, int], Awaitable[None]],
    running: Callable[[], bool],
) -> None:
    """Run ``step`` again and again while ``running()``, as a loop that must never die quietly
    (a subscription's reads): a failure is told to ``failed`` (the error, how many in a row)
    and waited out on ``backoff``; a step that succeeds starts the waits over."""
    while running():
        async for attempt in backoff.tries(Exception):
            with attempt:
                if not running():
                    break
                try:
                    await step()
                except Exception as e:
                    await failed(e, attempt.num)
                    raise


def fleet_retry_hooks() -> None:
    """A fleet process counts and logs its retries itself (``eventfleet_dependency_retries``, the
    roles' own lines); stamina's default hooks would add a warning per retry and, in the default
    registry no one scrapes, a counter series per retry number: without bound in a long outage
    (``DEPENDENCY_PAUSES`` retries until the dependency is back). Off for the process."""
    stamina.instrumentation.set_on_retry_hooks([])
