"""Kafka away: every topic page is the console's 503 page naming Kafka, never a traceback,
and the pages come back with the broker."""

from __future__ import annotations

from pathlib import Path

from tests.console.http_calls import fetch
from tests.faults import proxied_broker
from tests.fleet import FleetProcess
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


async def test_kafka_down_is_the_consoles_503_page_and_the_pages_come_back(
    stack: EmbeddedStack, tmp_path: Path, unique_name: str
) -> None:
    async with proxied_broker(tmp_path) as (address, proxy):
        fleet = FleetProcess.for_stack(
            stack, unique_name, roles="commands",
            EVENTFLEET_KAFKA_URL=f"kafka://{address}", EVENTFLEET_KAFKA_TIMEOUT_MS="1000",
        )  # fmt: skip
        await fleet.start()
        try:
            topic = f"/console/topics/{fleet.prefix}events"
            pages = (
                "/console/topics", topic, f"{topic}?key=k", f"{topic}/settings",
                f"{topic}/tail?from=0:0&started=9999999999",
            )  # fmt: skip
            status, _, page = await fetch(fleet, "/console/topics")
            assert status == 200, page[:500]
            proxy.drop()
            for path in pages:
                status, kind, page = await fetch(fleet, path)
                assert (status, kind) == (503, "text/html"), (path, status, page[:500])
                assert 'id="error"' in page and "Kafka" in page, (path, page[:500])
                assert "Traceback" not in page
            proxy.resume()

            async def back() -> bool:
                return all([(await fetch(fleet, path))[0] == 200 for path in pages])

            await wait_for(back, timeout_s=60, what="the topic pages with Kafka back")
        finally:
            proxy.resume()
            assert await fleet.stop() == 0
