"""Probes answer within their timeout whatever a dependency does; readiness is the work owned.

The dependencies are frozen with SIGSTOP (their ports accept connections, nothing answers),
the worst case for a probe that would wait on them.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.fleet import FleetProcess, running_fleet
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack

PROBE_TIMEOUT_S = 2.0  # the Deployments' timeoutSeconds


async def probe(fleet: FleetProcess, path: str) -> tuple[int, Any]:
    """GET ``path`` as the kubelet would: no answer within 2 s is a failed probe (raises)."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(fleet.url + path) as response:
            return response.status, orjson.loads(await response.read())


async def answers_every_probe(fleet: FleetProcess) -> dict[str, tuple[int, Any]]:
    return {path: await probe(fleet, path) for path in ("/healthz", "/readyz", "/healthz?verbose")}


def dependency(answers: dict[str, tuple[int, Any]], service: str) -> Any:
    return answers["/healthz?verbose"][1]["dependencies"].get(service, {}).get("ok")


async def test_a_paused_store_leaves_every_probe_answering_and_the_pod_ready(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    mongo = private_stack.process("mongo")
    async with running_fleet(
        private_stack,
        unique_name,
        EVENTFLEET_MONGO_TIMEOUT_MS="500",
        EVENTFLEET_HEALTH_INTERVAL_S="1",
    ) as fleet:

        async def store_reported_up() -> bool:  # a check may miss its 500 ms on a busy machine
            return dependency(await answers_every_probe(fleet), "store") is True

        await wait_for(store_reported_up, timeout_s=15, what="the store reported up")
        mongo.pause()
        try:
            seen: dict[str, tuple[int, Any]] = {}

            async def store_reported_down() -> bool:
                seen.update(await answers_every_probe(fleet))  # each within 2 s, or it raises
                return dependency(seen, "store") is False

            await wait_for(store_reported_down, timeout_s=15, what="the store reported down")
            # A MongoDB blip must not make consumers unready (PDBs would block node drains).
            assert seen["/healthz"][0] == 200
            assert seen["/readyz"] == (
                200,
                {
                    "ready": True,
                    "checks": {"started": True, "running": True, "assigned": True},
                    "idle": False,
                },
            )
            _, text = await fleet.get("/metrics")
            assert 'eventfleet_dependency_up{role="all",service="store"} 0.0' in text
            # A query the paused store cannot answer: 503 with a sentence, no driver internals.
            status, body = await fleet.get("/v1/order/paused-1/events")
            assert (status, body["error"]) == (503, "store_unavailable"), body
            assert body["message"] == "MongoDB did not answer while reading order paused-1."
        finally:
            mongo.resume()

        async def store_back() -> bool:
            return dependency(await answers_every_probe(fleet), "store") is True

        await wait_for(store_back, timeout_s=15, what="the store reported up again")


async def test_a_paused_broker_makes_consumers_unready_and_probes_still_answer(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    kafka = private_stack.process("kafka")
    async with running_fleet(
        private_stack,
        unique_name,
        EVENTFLEET_KAFKA_TIMEOUT_MS="1000",
        EVENTFLEET_HEALTH_INTERVAL_S="1",
    ) as fleet:
        kafka.pause()
        try:
            seen: dict[str, tuple[int, Any]] = {}

            async def unready() -> bool:
                seen.update(await answers_every_probe(fleet))  # each within 2 s, or it raises
                return seen["/readyz"][0] == 503

            # The consumer loses its group coordinator: it no longer owns its partitions.
            await wait_for(unready, timeout_s=40, what="/readyz 503 with the broker paused")
            assert seen["/readyz"][1]["checks"]["assigned"] is False
            assert seen["/healthz"][0] == 200  # the process itself works: no restart
            assert dependency(seen, "stream") is False  # checked every second, 1 s timeout
        finally:
            kafka.resume()
        await wait_for(fleet.ready, timeout_s=60, what="ready again after the broker resumed")
