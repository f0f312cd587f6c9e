"""One fleet with console actions on for the package, poisoned orders, a browser per module.

Read-only behaviour is checked on the session's shared fleet (default settings). Every test
here that needs a fleet is ``slow`` (``-m 'not slow'`` skips them with the other end-to-end
tests).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fleet import FleetProcess, running_fleet
from tests.kafka_topics import produce_raw
from tests.waiting import wait_for
from workers.adapters.kafka import plain
from workers.adapters.kafka.reader import read_topic
from workers.devtools.embedded import EmbeddedStack
from workers.roles.ops.dlq_replay import DeadLetterEntry, entries_of

HERE = Path(__file__).parent
INSTALL = "run `apt-get install -y chromium chromium-driver` as root (`python -m tests` does it)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needs = set(getattr(item, "fixturenames", ())) & {"fleet", "console_fleet"}
        if HERE in Path(str(item.fspath)).parents and needs:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="package")
async def console_fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet whose console may re-submit dead letters."""
    name, actions = f"console_{uuid.uuid4().hex[:8]}", {"EVENTFLEET_CONSOLE_ACTIONS": "true"}
    async with running_fleet(
        stack, name, EVENTFLEET_CONSOLE_SAMPLE_INTERVAL_S="1", **actions
    ) as process:
        yield process


async def poison_order(fleet: FleetProcess, order_id: str) -> str:
    """Produce an OrderPlaced without items (invalid data) straight onto the events topic."""
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id, "aggregate_type": "order", "aggregate_id": order_id,
        "type": "OrderPlaced", "version": None, "data": {"items": []}, "metadata": {
            "client_id": None, "command_id": None, "correlation_id": None, "causation_id": None,
        }, "occurred_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    record = (f"order:{order_id}".encode(), orjson.dumps(envelope), ())
    await produce_raw(fleet.env["EVENTFLEET_KAFKA_URL"], f"{fleet.prefix}events", [record])
    return event_id


async def dead_letter_of(fleet: FleetProcess, event_id: str) -> DeadLetterEntry:
    """Wait until the appender dead-lettered ``event_id``; its entry."""
    found: list[DeadLetterEntry] = []

    async def arrived() -> bool:
        records = await read_topic(
            plain(fleet.env["EVENTFLEET_KAFKA_URL"]), f"{fleet.prefix}events.dlq"
        )
        found[:] = [e for e in entries_of(records) if e.event and e.event.id == event_id]
        return bool(found)

    await wait_for(arrived, timeout_s=60, what=f"dead letter of {event_id}", interval_s=0.2)
    return found[0]


async def stored(fleet: FleetProcess, aggregate: str, aggregate_id: str) -> list[dict[str, Any]]:
    status, body = await fleet.get(f"/v1/{aggregate}/{aggregate_id}/events?limit=1000")
    return list(body["events"]) if status == 200 else []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module, driven by Debian's chromedriver."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(f"chromium or chromedriver is missing: {INSTALL}.", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(60)
    try:
        yield session
    finally:
        session.quit()
