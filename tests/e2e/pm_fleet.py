"""What the process manager end-to-end tests share: the pipeline fleet and pm processes on one
store, group and topic prefix, their instances read from MongoDB, histories read over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.fleet import FleetProcess
from tests.orders import ITEMS
from tests.waiting import wait_for
from workers.adapters.mongo import MongoProcessInstances, connect, database
from workers.devtools.embedded import EmbeddedStack
from workers.ports import Instance

PROCESSES = {
    "EVENTFLEET_PROCESSES": "tests.e2e.pm_domains:processes",
    "EVENTFLEET_PROCESS_POLL_MS": "100",
}


def pm_process(stack: EmbeddedStack, name: str, **env: str) -> FleetProcess:
    """A ``worker --role pm`` of fleet ``name`` (its store, group and topics), not started."""
    return FleetProcess.for_stack(stack, name, roles="pm", **{**PROCESSES, **env})


@asynccontextmanager
async def instances_of(stack: EmbeddedStack, name: str) -> AsyncIterator[MongoProcessInstances]:
    """Fleet ``name``'s process manager instances, read straight from its MongoDB database."""
    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        yield MongoProcessInstances(database(client, name))
    finally:
        await client.close()


async def history(fleet: FleetProcess, aggregate_type: str, aggregate_id: str) -> list[Any]:
    """The aggregate's stored events (none: [])."""
    status, body = await fleet.get(f"/v1/{aggregate_type}/{aggregate_id}/events")
    return body["events"] if status == 200 else []


async def types_of(fleet: FleetProcess, aggregate_type: str, aggregate_id: str) -> list[str]:
    return [e["type"] for e in await history(fleet, aggregate_type, aggregate_id)]


async def until_stored(
    fleet: FleetProcess, aggregate_type: str, aggregate_id: str, types: list[str], *,
    timeout_s: float = 30,
) -> None:  # fmt: skip
    async def there() -> bool:
        return await types_of(fleet, aggregate_type, aggregate_id) == types

    await wait_for(there, timeout_s=timeout_s, interval_s=0.1,
                   what=f"{aggregate_type} {aggregate_id} holding {types}")  # fmt: skip


async def until_instance(
    store: MongoProcessInstances, process: str, key: str, *, timeout_s: float = 30, **want: Any
) -> Instance:
    """The instance once it exists (with every ``want``ed attribute, if given)."""
    found: list[Instance] = []

    async def there() -> bool:
        instance = (await store.load(process, [key])).get(key)
        if instance is None or any(getattr(instance, k) != v for k, v in want.items()):
            return False
        found.append(instance)
        return True

    await wait_for(there, timeout_s=timeout_s, interval_s=0.1,
                   what=f"instance {process}/{key} {want or ''}")  # fmt: skip
    return found[-1]


async def place(fleet: FleetProcess, order: str) -> None:
    status, body = await fleet.post(f"/v1/order/{order}/events",
                                    {"type": "OrderPlaced", "data": ITEMS})  # fmt: skip
    assert status == 202, body


async def pay(fleet: FleetProcess, order: str) -> None:
    status, body = await fleet.post(f"/v1/order/{order}/events",
                                    {"type": "OrderPaid", "data": {"amount": 2}})  # fmt: skip
    assert status == 202, body
