"""A retry policy (``Backoff``) runs its tries on stamina: the bounds it states, only the errors
it is given, the waits it states; a policy that cannot hold is refused when it is made."""

from __future__ import annotations

import pytest
import stamina

from topics.errors import ConfigError
from workers.bus import RetryPolicy
from workers.retries import Backoff, On, fleet_retry_hooks, keep_running


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


async def run(policy: Backoff, errors: list[Exception], on: On = Flaky) -> tuple[int, list[float]]:
    """Tries of ``policy`` over ``errors`` (then success): how many ran, and each next_wait."""
    tries, waits = 0, []
    async for attempt in policy.tries(on):
        with attempt:
            tries += 1
            waits.append(attempt.next_wait)
            if errors:
                raise errors.pop(0)
    return tries, waits


async def test_the_tries_stop_at_the_first_success_and_wait_as_stated() -> None:
    policy = Backoff(first_s=0.001, max_s=0.004, attempts=10)
    tries, waits = await run(policy, [Flaky(), Flaky(), Flaky(), Flaky()])
    assert tries == 5
    assert waits == [0.001, 0.002, 0.004, 0.004, 0.004]  # doubling, capped at max_s


async def test_the_last_error_is_raised_when_the_attempts_are_spent() -> None:
    policy = Backoff(first_s=0.001, max_s=0.001, attempts=3)
    errors: list[Exception] = [Flaky("1"), Flaky("2"), Flaky("3"), Flaky("4")]
    with pytest.raises(Flaky, match="3"):
        await run(policy, errors)
    assert [str(e) for e in errors] == ["4"]  # three tries, no more


async def test_an_error_not_retried_is_raised_at_once() -> None:
    errors: list[Exception] = [Broken("no"), Flaky()]
    with pytest.raises(Broken):
        await run(Backoff(first_s=0.001, max_s=0.001, attempts=5), errors)
    assert len(errors) == 1


async def test_a_strict_timeout_begins_no_wait_that_would_end_past_it() -> None:
    # A first wait of 60 s within a 1 s timeout: the error is raised instead of waiting.
    policy = Backoff(first_s=60.0, max_s=60.0, timeout_s=1.0, strict_timeout=True)
    errors: list[Exception] = [Flaky("first"), Flaky("second")]
    with pytest.raises(Flaky, match="first"):
        await run(policy, errors)


async def test_a_full_jitter_backoff_retries_only_its_errors() -> None:
    policy = Backoff(first_s=0.001, max_s=0.002, attempts=4, full_jitter=True)
    with pytest.raises(Broken):
        await run(policy, [Flaky(), Broken()])
    with pytest.raises(Flaky):
        await run(policy, [Flaky(), Flaky(), Flaky(), Flaky()])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_s": 0.0, "max_s": 1.0}, "0 < first_s <= max_s"),
        ({"first_s": 2.0, "max_s": 1.0}, "0 < first_s <= max_s"),
        ({"first_s": 0.1, "max_s": 1.0, "attempts": 0}, "at least 1"),
        ({"first_s": 0.1, "max_s": 1.0, "timeout_s": 0.0}, "must be positive"),
        ({"first_s": 0.1, "max_s": 1.0, "jitter_s": -1.0}, "must not be negative"),
    ],
)
def test_a_policy_that_cannot_hold_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_a_judged_backoff_refuses_a_hook() -> None:
    with pytest.raises(ConfigError, match="error classes"):
        Backoff(first_s=0.1, max_s=1.0, full_jitter=True).tries(lambda e: True)


def test_a_bus_policy_counts_its_waits_from_the_first_run() -> None:
    policy = RetryPolicy(max_attempts=5, first_backoff_ms=200, max_backoff_ms=5_000)
    assert policy.runs() == Backoff(0.2, 5.0, attempts=5)
    assert policy.runs(done=2) == Backoff(0.8, 5.0, attempts=3)  # the third run waits 0.8 s
    assert policy.writes() == Backoff(0.2, 5.0)  # a dead letter: no bound


def test_a_fleet_process_turns_staminas_own_retry_hooks_off() -> None:
    before = stamina.instrumentation.get_on_retry_hooks()

    def hook(details: stamina.instrumentation.RetryDetails) -> None:
        raise AssertionError(details)

    try:
        stamina.instrumentation.set_on_retry_hooks([hook])
        assert len(stamina.instrumentation.get_on_retry_hooks()) == 1
        fleet_retry_hooks()
        assert stamina.instrumentation.get_on_retry_hooks() == ()
    finally:
        stamina.instrumentation.set_on_retry_hooks(list(before))


async def test_a_loop_kept_running_counts_failures_in_a_row_and_starts_over_after_a_success() -> (
    None
):
    outcomes: list[Exception | None] = [Flaky(), Broken(), None, Flaky(), None, None]
    told: list[tuple[str, int]] = []
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def failed(e: Exception, in_a_row: int) -> None:
        told.append((type(e).__name__, in_a_row))

    await keep_running(
        step, Backoff(first_s=0.001, max_s=0.002), failed=failed, running=lambda: bool(outcomes)
    )
    assert steps == 6 and outcomes == []  # every kind of error retried; ended when told to
    assert told == [("Flaky", 1), ("Broken", 2), ("Flaky", 1)]


async def test_a_loop_kept_running_takes_no_step_once_it_is_told_to_stop() -> None:
    running = [True]
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        running[0] = False  # stopped while this step fails: no further step
        raise Flaky()

    async def failed(e: Exception, in_a_row: int) -> None:
        pass

    await keep_running(
        step, Backoff(first_s=0.001, max_s=0.002), failed=failed, running=lambda: running[0]
    )
    assert steps == 1


async def test_a_call_makes_its_first_try_before_stamina_and_counts_it_among_the_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contexts = 0
    real = stamina.retry_context

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal contexts
        contexts += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]  # stamina's own arguments

    monkeypatch.setattr(stamina, "retry_context", counted)
    policy = Backoff(first_s=0.001, max_s=0.004, attempts=3)
    tries: list[int] = []

    async def works(num: int) -> str:
        tries.append(num)
        return "done"

    assert await policy.call(works, Flaky) == "done"
    assert (tries, contexts) == ([1], 0)  # nearly every call: no retry machinery at all

    told: list[tuple[str, int, float]] = []

    async def flaky(num: int) -> str:
        tries.append(num)
        raise Flaky(f"try {num}")

    tries.clear()
    with pytest.raises(Flaky, match="try 3"):
        await policy.call(
            flaky, Flaky, retrying=lambda e, a: told.append((str(e), a.num, a.next_wait))
        )
    assert tries == [1, 2, 3] and contexts == 1  # three tries in all, the first one outside
    assert told == [("try 1", 1, 0.001), ("try 2", 2, 0.002), ("try 3", 3, 0.004)]


async def test_a_call_raises_an_error_it_does_not_retry_at_once() -> None:
    tries = 0

    async def broken(num: int) -> None:
        nonlocal tries
        tries += 1
        raise Broken()

    with pytest.raises(Broken):
        await Backoff(first_s=0.001, max_s=0.004, attempts=5).call(broken, Flaky)
    assert tries == 1


async def test_a_calls_timeout_counts_from_its_first_try() -> None:
    clock = [0.0]
    tries: list[int] = []

    async def slow_first(num: int) -> str:
        tries.append(num)
        if num == 1:
            clock[0] += 5.0  # the first try takes the whole timeout
            raise Flaky("first")
        return "late"

    policy = Backoff(first_s=0.001, max_s=0.004, timeout_s=1.0)
    with pytest.raises(Flaky, match="first"):
        await policy.call(slow_first, Flaky, monotonic=lambda: clock[0])
    assert tries == [1]  # no try begun past the timeout

    async def quick_first(num: int) -> str:
        tries.append(num)
        if num == 1:
            raise Flaky("first")
        return "second"

    tries.clear()
    assert await policy.call(quick_first, Flaky, monotonic=lambda: clock[0]) == "second"
    assert tries == [1, 2]  # what is left of the timeout goes to stamina
