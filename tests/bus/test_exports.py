"""The bus package's public API: the in-process bus, the errors and the policies; the durable
buses are their technologies' adapters."""

from __future__ import annotations

import workers.bus


def test_the_bus_package_exports_its_public_api() -> None:
    assert sorted(workers.bus.__all__) == [
        "ANY_TYPE",
        "BusClosed",
        "BusError",
        "BusUnavailable",
        "InProcessEventBus",
        "PullPolicy",
        "RetryPolicy",
    ]
    for name in workers.bus.__all__:
        assert getattr(workers.bus, name) is not None
    assert workers.bus.BusUnavailable.retriable and workers.bus.BusUnavailable.service == "bus"
    assert not workers.bus.BusError.retriable and not workers.bus.BusClosed.retriable
