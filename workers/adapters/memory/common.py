"""What every in-memory adapter shares: outages a test switches on, and values copied as stored."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from topics.errors import Unavailable
from topics.jsonvalue import Json

Unavailability = Callable[[str], Unavailable]
"""Builds the port's unavailable error from what the call was doing (``"reading order o1"``)."""


_PASS = Exception("a call fail_next(after=...) lets through")


class Faults:
    """One adapter's outages: down until ``up()``, the next calls failing, or calls held."""

    def __init__(self, unavailable: Unavailability) -> None:
        self._unavailable = unavailable
        self._down = False
        self._failures: list[tuple[str | None, BaseException | None]] = []
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._held_on: str | None = None
        self.held = 0
        """Calls waiting in ``hold()`` right now."""
        self.calls: Counter[str] = Counter()
        """Calls made so far, by operation (the adapter's method name)."""

    def down(self) -> None:
        """Every call raises the port's unavailable error until ``up()``."""
        self._down = True

    def up(self) -> None:
        self._down = False

    def fail_next(
        self,
        n: int = 1,
        error: BaseException | None = None,
        *,
        on: str | None = None,
        after: int = 0,
    ) -> None:
        """After ``after`` more calls (of operation ``on``, or any), ``n`` raise ``error``.

        The default error is the port's unavailable error.
        """
        if n < 1 or after < 0:
            raise ValueError(f"fail_next needs n >= 1 and after >= 0, got {n} and {after}")
        self._failures.extend([(on, _PASS)] * after + [(on, error)] * n)

    def hold(self, *, on: str | None = None) -> None:
        """Calls (of operation ``on``, or any) wait, as on a stalled server, until ``release()``."""
        self._held_on = on
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def enter(self, operation: str, what: str, *, target: str | None = None) -> None:
        """Called at the start of each operation: one suspension point, as a real call has.

        ``on`` in ``fail_next`` and ``hold`` matches the operation or its ``target`` (a topic).
        """
        self.calls[operation] += 1
        await asyncio.sleep(0)
        names = (None, operation, target)
        if not self._flowing.is_set() and self._held_on in names:
            self.held += 1
            try:
                await self._flowing.wait()
            finally:
                self.held -= 1
        if self._down:
            raise self._unavailable(what)
        for index, (on, error) in enumerate(self._failures):
            if on in names:
                del self._failures[index]
                if error is _PASS:
                    return
                raise error if error is not None else self._unavailable(what)


class Switchable:
    """The outage controls of an in-memory adapter, for tests of pause-and-retry."""

    faults: Faults

    def down(self) -> None:
        """Every call raises the port's unavailable error until ``up()``."""
        self.faults.down()

    def up(self) -> None:
        self.faults.up()

    def fail_next(
        self,
        n: int = 1,
        error: BaseException | None = None,
        *,
        on: str | None = None,
        after: int = 0,
    ) -> None:
        """After ``after`` more calls (of method or topic ``on``, or any), ``n`` raise ``error``."""
        self.faults.fail_next(n, error, on=on, after=after)

    def hold(self, *, on: str | None = None) -> None:
        """Calls (of method or topic ``on``, or any) wait until ``release()``; ``held`` counts
        them."""
        self.faults.hold(on=on)

    def release(self) -> None:
        self.faults.release()

    @property
    def held(self) -> int:
        return self.faults.held

    @property
    def calls(self) -> Counter[str]:
        return self.faults.calls


def down_message(service: str, what: str) -> str:
    return f"the in-memory {service} did not answer while {what}: a test took it down; call up()."


def as_stored(value: Json) -> Json:
    """A copy of ``value`` as MongoDB gives it back: lists for tuples, UTC times in milliseconds."""
    if isinstance(value, Mapping):
        return {key: as_stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_stored(item) for item in value]
    if isinstance(value, datetime):
        return stored_time(value)
    return value


def stored_time(moment: datetime) -> datetime:
    """A time as BSON keeps it: UTC, milliseconds (a naive time is taken as UTC, as PyMongo
    does)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
