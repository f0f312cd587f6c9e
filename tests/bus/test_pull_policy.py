"""How a Redis or NATS subscription pulls is one value, PullPolicy; a count or a duration below 1
is refused when it is built, with the field named."""

from __future__ import annotations

import pytest

from topics.errors import ConfigError
from workers.adapters.nats import NatsEventBus
from workers.adapters.redis import RedisEventBus
from workers.bus import PullPolicy


def test_the_defaults_are_the_documented_ones() -> None:
    assert PullPolicy() == PullPolicy(batch_size=10, wait_ms=1_000, redeliver_after_ms=60_000)
    assert (PullPolicy().wait_s, PullPolicy().redeliver_after_s) == (1.0, 60.0)


@pytest.mark.parametrize("field", ["batch_size", "wait_ms", "redeliver_after_ms"])
@pytest.mark.parametrize("bad", [0, -1])
def test_a_pull_value_below_one_is_refused_naming_the_field(field: str, bad: int) -> None:
    with pytest.raises(ConfigError, match=rf"^PullPolicy {field} must be >= 1, got {bad}$"):
        PullPolicy(**{field: bad})


def test_both_buses_take_the_same_pull_policy() -> None:
    pull = PullPolicy(batch_size=3, wait_ms=200, redeliver_after_ms=2_000)
    assert NatsEventBus(pull=pull).pull is pull
    assert RedisEventBus("redis://127.0.0.1:1", pull=pull).pull is pull
    assert NatsEventBus().pull == RedisEventBus("redis://127.0.0.1:1").pull == PullPolicy()


def test_the_buses_own_counts_below_one_are_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^NatsEventBus max_msgs must be >= 1, got 0$"):
        NatsEventBus(max_msgs=0)
    with pytest.raises(ConfigError, match=r"^NatsEventBus timeout_ms must be >= 1, got 0$"):
        NatsEventBus(timeout_ms=0)
    with pytest.raises(ConfigError, match=r"^RedisEventBus maxlen must be >= 1, got 0$"):
        RedisEventBus("redis://127.0.0.1:1", maxlen=0)
