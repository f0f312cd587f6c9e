"""At the edges of a fault, tried from outside: nothing accepted is lost, and commits never pass an
unstored event, whatever stops the appender (SIGTERM, SIGKILL) while the store is frozen.

Every step checks the appender group's committed offsets against the store: each record below a
commit is stored, refused with the refusal recorded, or dead-lettered (``commits_past_undecided``).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pytest

from tests.auditing import settled_audit
from tests.e2e.committed import (
    commits_past_undecided,
    committed,
    decided_ids,
    positions,
    store_counts,
)
from tests.fleet import LIFECYCLE, FleetProcess, metric, order_items, start_together
from tests.kafka_topics import produce_events, read_until
from tests.waiting import wait_for, within
from topics.envelope import decode
from workers.adapters.mongo import MongoSnapshotStore, connect, database
from workers.devtools.bench.append import chains, produce
from workers.devtools.embedded import EmbeddedStack

DRAIN_S = 6
ORDERS = 24


async def retries(process: FleetProcess, role: str, service: str) -> float:
    status, page = await process.get("/metrics")
    if status != 200:
        return 0.0
    return metric(page, "eventfleet_dependency_retries_total", role=role, service=service)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_appender_stopped_while_the_store_is_frozen_commits_nothing_it_did_not_store(
    private_stack: EmbeddedStack, unique_name: str, stop: signal.Signals
) -> None:
    urls = private_stack.urls
    common = {
        "EVENTFLEET_DRAIN_TIMEOUT_S": str(DRAIN_S),
        "EVENTFLEET_MONGO_TIMEOUT_MS": "1000",
        "EVENTFLEET_HEALTH_INTERVAL_S": "1",
    }
    commands = FleetProcess.for_stack(private_stack, unique_name, roles="commands", **common)
    appender = FleetProcess.for_stack(private_stack, unique_name, roles="appender", **common)
    await start_together(commands, appender)
    group, topic = f"{unique_name}-appender", f"{unique_name}.events"

    async def check_commits(when: str, decided: set[str] | None = None) -> None:
        wrong = await commits_past_undecided(
            urls.kafka_url,
            urls.mongo_url,
            group=group,
            topic=topic,
            db_name=unique_name,
            decided=decided,
        )
        assert wrong == [], f"{when}: committed past unstored events {wrong}"

    try:
        run = uuid.uuid4().hex[:6]
        status, body = await commands.post(
            f"/v1/order/warm-{run}/events",
            {"type": "OrderPlaced", "data": {"items": order_items()}},
        )
        assert status == 202, body
        await wait_for(
            lambda: _stored(private_stack, unique_name, {body["event_id"]}),
            timeout_s=30,
            what="the warm-up order stored",
        )
        before_freeze = await decided_ids(urls.mongo_url, unique_name)
        mongo = private_stack.process("mongo")
        mongo.pause()
        accepted: dict[str, str] = {}
        try:
            for i in range(ORDERS):
                order = f"o-{run}-{i}"
                status, body = await commands.post(
                    f"/v1/order/{order}/events",
                    {
                        "type": "OrderPlaced",
                        "data": {"items": order_items()},
                        "command_id": f"c{i}",
                    },
                )
                assert status == 202, body  # the marker alone answers a new aggregate
                accepted[order] = body["event_id"]
            # One more, produced straight to the topic as a direct producer would.
            direct = await produce_events(
                urls.kafka_url,
                topic,
                [("order", f"d-{run}", "OrderPlaced", {"items": order_items()})],
            )
            accepted[f"d-{run}"] = direct[0]
            await wait_for(
                lambda: _retrying(appender),
                timeout_s=30,
                what="the appender retrying the frozen store",
            )
            # Periodic commits (every second) pass while the store is frozen: none may cover
            # them. Two more retries of a 1 s store call outlast two commit intervals.
            before = await committed(urls.kafka_url, group, topic)
            first = await retries(appender, "appender", "store")
            await wait_for(
                lambda: _retried(appender, more_than=first + 1),
                timeout_s=60,
                what="two more store retries during the freeze",
            )
            after = await committed(urls.kafka_url, group, topic)
            assert after == before, "an offset moved while nothing could be stored"
            await check_commits("during the freeze", before_freeze)
            assert appender.process is not None
            started = time.monotonic()
            appender.process.send_signal(stop)
            code = await within(
                appender.process.wait(), timeout_s=DRAIN_S + 10, what="the appender to leave"
            )
            took = time.monotonic() - started
            if stop is signal.SIGTERM:
                assert took <= DRAIN_S + 1.5, (
                    f"the appender took {took:.1f}s to leave (drain {DRAIN_S}s)"
                )
                assert code == 75, f"a drain that could not finish says so (exit {code})"
            await check_commits(f"after {stop.name}", before_freeze)
        finally:
            mongo.resume()
        await check_commits("after the thaw, before a new appender")
        # An insert the stopped appender sent to the frozen store may land at the thaw (its
        # outcome was unknown): those events are stored, unpublished and uncommitted, and the
        # next appender finds them stored and publishes them.
        landed = set(accepted.values()) & await decided_ids(urls.mongo_url, unique_name)
        successor = await FleetProcess.for_stack(
            private_stack, unique_name, roles="appender", **common
        ).start()
        try:
            await wait_for(
                lambda: _stored(private_stack, unique_name, set(accepted.values())),
                timeout_s=60,
                what=f"all {len(accepted)} accepted events stored by the new appender",
            )
            await check_commits("after the new appender stored them")
            stored, doubled = await store_counts(private_stack, unique_name)
            records = await read_until(
                urls.kafka_url, f"{unique_name}.events.stored", expect=len(accepted),
                where=lambda r: decode(r.value).id in accepted.values(), timeout_s=60,
            )  # fmt: skip
            published = {decode(r.value).id for r in records}
            assert published >= set(accepted.values()), "an accepted event never published"
            assert doubled == 0
            print(f"appender {stop.name} with the store frozen: sent {len(accepted)} / accepted "
                  f"{len(accepted)} / stored {stored - 1} (and the warm-up; {len(landed)} landed "
                  f"at the thaw from the stopped appender's last insert) / lost 0 / doubled "
                  f"{doubled} / told wrong 0; committed past an unstored event 0 (5 checks)")  # fmt: skip
        finally:
            assert await successor.stop() == 0
    finally:
        appender.kill()
        await commands.stop()


async def test_records_faust_drops_at_a_rebalance_are_redelivered_and_no_commit_passes_them(
    stack: EmbeddedStack, unique_name: str
) -> None:
    """Faust clears its stream queues when a rebalance's recovery resumes them, dropping records
    fetched since its seek to the committed offsets (``tests.e2e.leaky`` makes that window
    wide). The agent sees the hole before the next record it gets, or past the last one once
    idle, and seeks back: every event is stored, the group commits exactly to the end."""
    urls = stack.urls
    bootstrap = [urls.kafka_url.removeprefix("kafka://")]
    group, topic = f"{unique_name}-all", f"{unique_name}.events"
    warm_up, backlog = chains(40, 30, "warm"), chains(600, 30, "backlog")

    async def committed_through(count: int) -> bool:
        return (
            sum(max(0, o) for o in (await committed(urls.kafka_url, group, topic)).values())
            == count
        )

    # Every role (the rule table's recovery is what opens Faust's window), and a commit on each
    # partition: a group without one resets its position later, after the window.
    first = await FleetProcess.for_stack(stack, unique_name, roles="all").start()
    await produce(bootstrap, topic, warm_up)
    await wait_for(
        lambda: committed_through(len(warm_up)), timeout_s=60, what="the warm-up committed"
    )
    assert await first.stop() == 0
    await produce(bootstrap, topic, backlog)  # waits for the next owner
    leaky = await FleetProcess.for_stack(
        stack, unique_name, roles="all", EVENTFLEET_DOMAINS="tests.e2e.leaky:domains",
        EVENTFLEET_BATCH_SIZE="50",
    ).start()  # fmt: skip
    try:
        events = warm_up + backlog
        await wait_for(
            lambda: _stored(stack, unique_name, {e.id for e in events}),
            timeout_s=90, what=f"{len(events)} events stored by the leaky worker",
        )  # fmt: skip

        async def every_topic_committed_to_its_end() -> bool:
            for name in (topic, f"{unique_name}.events.stored"):
                ends = {p.partition: p.offset + 1 for p in await positions(urls.kafka_url, name)}
                done = await committed(urls.kafka_url, group, name)
                if any(done.get(p, -1) < end for p, end in ends.items()):
                    return False
            return True

        await wait_for(every_topic_committed_to_its_end, timeout_s=60,
                       what="every role of the group committed to the end of its topic")  # fmt: skip
        assert (
            await commits_past_undecided(
                urls.kafka_url, urls.mongo_url, group=group, topic=topic, db_name=unique_name
            )
            == []
        )
        _, page = await leaky.get("/metrics")
        redelivered = sum(
            float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
            if line.startswith("eventfleet_offset_gaps_total{") and 'outcome="redelivered"' in line
        )  # fmt: skip
        assert redelivered > 0, "no record was dropped: the test proved nothing"
        how = [line.split("lost on purpose: ", 1)[1] for line in
               leaky.log_path.read_text(errors="replace").splitlines() if "lost on purpose: " in line]  # fmt: skip
        print(
            f"records lost at the rebalance ({'; '.join(how)}): {redelivered:.0f} gaps redelivered"
        )
    finally:
        assert await leaky.stop() == 0


async def _stored(stack: EmbeddedStack, db: str, ids: set[str]) -> bool:
    return ids <= await decided_ids(stack.urls.mongo_url, db)


async def marker_checks(process: FleetProcess) -> float:
    """How many marker check-and-sets ``process`` has made (each command read makes one)."""
    return await process.metric("eventfleet_marker_latency_seconds_count")


async def _checked(process: FleetProcess, *, more_than: float) -> bool:
    return await marker_checks(process) > more_than


async def _retrying(appender: FleetProcess) -> bool:
    return await retries(appender, "appender", "store") > 0


async def _retried(appender: FleetProcess, *, more_than: float) -> bool:
    return await retries(appender, "appender", "store") > more_than


async def test_http_port_zero_serves_on_a_free_port_and_logs_it(
    stack: EmbeddedStack, unique_name: str
) -> None:
    process = FleetProcess.for_stack(stack, unique_name, roles="snapshotter")
    process.env["EVENTFLEET_HTTP_PORT"] = "0"
    chosen: list[int] = []

    async def serving() -> bool:
        assert process.process is not None
        if process.process.returncode is not None:
            raise AssertionError(f"exited {process.process.returncode}:\n{process.log_tail()}")
        found = re.search(
            r"serving HTTP on 127\.0\.0\.1:(\d+)", process.log_path.read_text(errors="replace")
        )
        if found:
            chosen[:] = [int(found.group(1))]
            process.env["EVENTFLEET_HTTP_PORT"] = found.group(1)  # where the probes are now
        return bool(found) and await process.ready()

    await process.launch()
    try:
        await wait_for(serving, timeout_s=60, what="the worker to log its port and be ready")
        assert chosen and chosen[0] != 0
    finally:
        assert await process.stop() == 0


@dataclass
class Tally:
    """What the load driver sent and was told."""

    sent: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # command id -> event id
    told: Counter[int] = field(default_factory=Counter)


async def drive(commands: list[FleetProcess], orders: list[str], tally: Tally) -> None:
    """Each order through its lifecycle, one request at a time, retrying with the same command
    id (safe) while a commands process restarts or answers 503."""

    async def one(order: str) -> None:
        for step, (kind, data) in enumerate(LIFECYCLE):
            command_id = f"{order}-{step}"
            body = {"type": kind, "data": data, "command_id": command_id}
            for attempt in range(600):
                target = commands[(hash(order) + attempt) % len(commands)]
                tally.sent += 1
                try:
                    status, answer = await target.post(f"/v1/order/{order}/events", body)
                except (aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.05)  # a client backing off, not synchronisation
                    continue
                tally.told[status] += 1
                if status == 202:
                    tally.accepted[command_id] = answer["event_id"]
                    break
                assert status == 503, (status, answer)  # never a false refusal
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{command_id} never accepted")

    await asyncio.gather(*(one(order) for order in orders))


async def test_a_rolling_restart_of_every_role_under_load_loses_nothing_and_every_rule_fires(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    common = {"EVENTFLEET_DRAIN_TIMEOUT_S": str(DRAIN_S)}
    roles = ("commands", "commands", "appender", "snapshotter", "forwarder")
    processes = [
        FleetProcess.for_stack(private_stack, unique_name, roles=role, **common) for role in roles
    ]
    await start_together(*processes)
    commands = processes[:2]
    try:
        run = uuid.uuid4().hex[:6]
        orders = [f"o-{run}-{i}" for i in range(30)]
        tally = Tally()
        load = asyncio.create_task(drive(commands, orders, tally))
        for index, process in enumerate(processes):
            await wait_for(lambda n=8 * (index + 1): len(tally.accepted) > n, timeout_s=60,
                           what="traffic before the next restart")  # fmt: skip
            started = time.monotonic()
            code = await process.stop(timeout_s=DRAIN_S + 5)
            assert code == 0, f"{process.roles} drained with exit {code}"
            assert time.monotonic() - started <= DRAIN_S + 1.5
            replacement = FleetProcess.for_stack(
                private_stack, unique_name, roles=process.roles, **common
            )
            processes[index] = await replacement.start()
            if index < 2:
                commands[index] = processes[index]
        await within(load, timeout_s=240, what="the load to end")
        ids = set(tally.accepted.values())
        assert len(ids) == len(orders) * len(LIFECYCLE)
        await wait_for(
            lambda: _stored(private_stack, unique_name, ids), timeout_s=60,
            what="every accepted event stored",
        )  # fmt: skip

        async def every_order_snapshotted() -> bool:
            client = connect(private_stack.urls.mongo_url, timeout_ms=10_000)
            try:
                found = await MongoSnapshotStore(database(client, unique_name)).load_many(
                    [("order", order) for order in orders]
                )
            finally:
                await client.close()
            return all(found.get(("order", o)) and found[("order", o)].version == len(LIFECYCLE)
                       for o in orders)  # fmt: skip

        await wait_for(every_order_snapshotted, timeout_s=60,
                       what="a snapshot of every delivered order (rule: on OrderDelivered)")  # fmt: skip
        report = await settled_audit(private_stack, unique_name)
        assert report.ok, [f for f in report.findings if f.error]
        print(f"rolling restart: sent {tally.sent}, told {dict(tally.told)}, "
              f"accepted {len(ids)}, stored {len(ids)}, lost 0")  # fmt: skip
    finally:
        for process in processes:
            process.kill()


async def test_a_commands_process_stopped_while_kafka_is_frozen_leaves_in_time_and_its_successor_gets_ready(
    private_stack: EmbeddedStack, unique_name: str
) -> None:
    common = {"EVENTFLEET_DRAIN_TIMEOUT_S": str(DRAIN_S), "EVENTFLEET_KAFKA_TIMEOUT_MS": "1000"}
    commands = await FleetProcess.for_stack(
        private_stack, unique_name, roles="commands", **common
    ).start()
    kafka = private_stack.process("kafka")
    marked = await marker_checks(commands)
    kafka.pause()
    try:
        pending = asyncio.ensure_future(  # a request in flight when the broker froze:
            commands.post(f"/v1/order/k-{uuid.uuid4().hex[:6]}/events",
                          {"type": "OrderPlaced", "data": {"items": order_items()}})
        )  # fmt: skip
        await wait_for(  # read and marked, its event on its way to the frozen broker
            lambda: _checked(commands, more_than=marked),
            timeout_s=30,
            what="the request's marker check",
        )
        assert commands.process is not None
        started = time.monotonic()
        commands.process.send_signal(signal.SIGTERM)
        code = await within(
            commands.process.wait(), timeout_s=DRAIN_S + 10, what="commands to leave"
        )
        took = time.monotonic() - started
        assert took <= DRAIN_S + 1.5, f"commands took {took:.1f}s to leave (drain {DRAIN_S}s)"
        assert code in (0, 75), code
        status, body = await pending  # answered before the process left, and truly: not sent
        assert status == 503 and body["error"] in ("outcome_unknown", "stream_unavailable"), body
    except BaseException:
        commands.kill()
        raise
    finally:
        kafka.resume()
    successor = await FleetProcess.for_stack(
        private_stack, unique_name, roles="commands", **common
    ).start(timeout_s=60)
    status, body = await successor.post(
        f"/v1/order/k2-{uuid.uuid4().hex[:6]}/events",
        {"type": "OrderPlaced", "data": {"items": order_items()}},
    )
    assert status == 202, body
    assert await successor.stop() == 0
