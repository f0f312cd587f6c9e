"""The Faust agents, kept thin: one batch loop for every role (take, decode, retry, ack).

Each agent takes whole fetched batches (``workers.stream.fetched``: no Faust stream per
record), hands the records to its role's logic, retries while a dependency is unavailable,
and acks only the records its offset ledger releases once they are decided. An
error no retry can fix stops the process with the batch unacked (``Fleet.fatal``), so it is
redelivered to a healthy worker instead of silently stalling the partition (faust#175). A
CancelledError nobody asked for, raised by a library, is such an error (``a_failure``); so is
any error of the task that closes offset gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import orjson
from faust.types import TP, Message, StreamT

from snapshot_rules.projection import Projection
from topics.envelope import Event
from topics.errors import InvalidInput, StreamUnavailable, Unavailable
from workers import tracing
from workers.ports import Outgoing, Record
from workers.roles.append.in_order import InOrder
from workers.roles.command.requests import CommandRequest, parse_request
from workers.roles.deadletter import decode_stored
from workers.roles.outcomes import NotDone, Unknown
from workers.roles.read.projections import ProjectionRunner
from workers.roles.retry import until_done
from workers.runtime.answers import Answer, answer_of, error
from workers.runtime.failures import a_failure
from workers.runtime.fleet import Fleet
from workers.stream.faust_app import fleet_consumer
from workers.stream.faust_types import Partitions
from workers.stream.fetched import BatchTopic, ack, fetched
from workers.stream.gaps import GapCloser
from workers.stream.offsets import OffsetLedger
from workers.stream.rule_table import FaustRuleStates, rule_table

log = logging.getLogger(__name__)

MAX_UNACKED_BATCHES = 16
"""Batches whose background work (snapshot rebuilds) may still be running before the agent waits."""
GAP_RETRY_S = 0.25
"""How soon an agent looks at a gap again that it could not close (a redelivery on its way,
or Kafka not answering)."""
TAIL_IDLE_S = 1.0
"""How long an agent is idle before it checks that nothing past what it received was lost."""


@dataclass(frozen=True, slots=True)
class Acks:
    """Ack exactly these records; the others of the batch stay unacked until a later ``Acks``."""

    records: Sequence[Record]


Handle = Callable[[Sequence[Record]], Awaitable["Awaitable[object] | Acks | None"]]
"""A role's batch logic. It returns None (ack the batch), background work that must finish
before the batch acks, or ``Acks`` (ack only the records it decided)."""
Tick = Callable[[], Awaitable[Sequence[Record]]]
"""Called on a timer between batches; returns records decided meanwhile (to ack)."""


def to_record(message: Message) -> Record:
    """A fetched Faust ``Message`` as the roles see it (a null value, which the fleet never
    writes, as empty bytes: the role's decoder refuses it like any other bad record)."""
    raw = message.headers or ()
    headers = tuple(raw.items()) if isinstance(raw, Mapping) else raw
    value = b"" if message.value is None else message.value
    # Positionally, and aiokafka's header pairs as they are: built once per record fetched.
    return Record(message.topic, message.partition, message.offset, message.key, value, headers)


def batch_agent(
    fleet: Fleet,
    *,
    name: str,
    role: str,
    topic: str,
    handle: Handle,
    tick: Tick | None = None,
    tick_s: float = 0.05,
    tick_when: Callable[[], bool] = lambda: True,
) -> OffsetLedger[Message]:
    """Declare agent ``name`` on ``topic``: every batch through ``handle``, acked after it;
    returns the agent's offset ledger. ``tick`` runs every ``tick_s`` while ``tick_when()``.

    Whatever the mode, records are acked through one ``OffsetLedger``: only a partition's
    prefix of decided records is acked, so no commit (periodic, rebalance, drain, shutdown)
    ever passes a record still waiting, retried, or in background work.
    """
    app, rt, settings = fleet.app, fleet.runtime, fleet.runtime.settings
    within_s = settings.batch_within_ms / 1000
    unacked = asyncio.Semaphore(MAX_UNACKED_BATCHES)
    ledger: OffsetLedger[Message] = OffsetLedger()  # Faust messages, held until they may be acked
    fleet.ledgers[name] = ledger
    activity = _Activity()
    gaps = GapCloser(
        positions=fleet.positions, group=app.conf.id, topic=topic, role=role,
        metrics=rt.metrics, seek=partial(_seek_back, fleet, topic),
        skip=partial(_skip_hole, fleet, topic), end=partial(_log_end, fleet, topic),
        quiet=activity.idle_for,
    )  # fmt: skip
    gap_seen = asyncio.Event()

    def release() -> None:
        ack(app.consumer, ledger.release())
        if ledger.gaps():
            gap_seen.set()

    def settle(records: Sequence[Record]) -> None:
        for record in records:
            ledger.decide(record.partition, record.offset)
        release()

    async def closing() -> None:
        """Close the ledger's gaps as they appear (what lies past a gap waits for it) and, while
        the agent is idle after a rebalance, check that no record past what it received was
        lost."""
        tail_checked = -1
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TAIL_IDLE_S):
                    await gap_seen.wait()
            gap_seen.clear()
            try:
                left = await gaps.close(ledger)
                generation = app.rebalance_generation
                if (
                    tail_checked != generation
                    and activity.idle_for(TAIL_IDLE_S)
                    and app.settled_for(TAIL_IDLE_S)
                    and not await gaps.check_tail(ledger)
                ):
                    tail_checked = generation  # once per rebalance: it drops records only then
            except Unavailable as e:
                log.warning("%s: a gap in the offsets stays open for now: %s", name, e)
                left = 1
            except BaseException as e:  # gaps no longer closed: the partition would stall
                if not a_failure(e):
                    raise
                fleet.fatal(name, e)
                return
            release()
            if left:
                await asyncio.sleep(GAP_RETRY_S)
                gap_seen.set()

    async def ticking() -> None:
        assert tick is not None
        while True:
            await asyncio.sleep(tick_s)
            if not tick_when():
                continue
            try:
                async with fleet.batch(role):
                    decided = await until_done(tick, role=role, metrics=rt.metrics)
            except BaseException as e:
                if not a_failure(e):
                    raise
                fleet.fatal(name, e)
                return
            settle(decided)

    async def revoked(sender: object, revoked: Partitions = None, **kwargs: object) -> None:
        # The partition's next owner reads these records again from the last commit.
        partitions = {tp.partition for tp in revoked or () if tp.topic == topic}
        ledger.revoke(partitions)
        gaps.forget(partitions)

    async def assigned(sender: object, assigned: Partitions = None, **kwargs: object) -> None:
        owned = {tp.partition for tp in assigned or () if tp.topic == topic}
        stale = ledger.partitions() - owned  # records buffered before the rebalance
        ledger.revoke(stale)
        gaps.forget(stale)
        ledger.expect(owned)  # their starts are read at once: a first fetch may be lost too
        gap_seen.set()

    async def settle_when_done(records: Sequence[Record], work: Awaitable[object]) -> None:
        try:
            await work
            settle(records)
        except BaseException as e:  # background work no retry can fix: stop, batch unacked
            if not a_failure(e):
                raise
            fleet.fatal(name, e)
        finally:
            unacked.release()

    async def agent(stream: StreamT[object]) -> None:
        batches = fetched(stream)
        ticker = asyncio.ensure_future(ticking()) if tick is not None else None
        closer = asyncio.ensure_future(closing())
        try:
            while True:
                try:
                    batch = await batches.take(settings.batch_size, within_s)
                except StopAsyncIteration:  # Faust stops the agent: its stream ends
                    return
                later: Awaitable[object] | Acks | None = None
                records = []
                for message in batch:
                    record = to_record(message)
                    taken = ledger.take(record.partition, record.offset, message)
                    if taken == "new":
                        records.append(record)
                    elif taken == "done":  # delivered again after a seek: decided long ago
                        ack(app.consumer, (message,))
                if ledger.gaps():
                    gap_seen.set()  # closed beside the batch: only its acks wait for it
                if not records:
                    continue
                try:
                    async with fleet.batch(role), activity:
                        later = await until_done(
                            partial(handle, records), role=role, metrics=rt.metrics
                        )
                except BaseException as e:
                    if not a_failure(e):
                        raise
                    fleet.fatal(name, e)
                    await asyncio.Future()  # unacked: parked until the draining app cancels us
                if isinstance(later, Acks):
                    settle(later.records)
                elif later is None:
                    settle(records)
                else:
                    await unacked.acquire()
                    fleet.spawn(settle_when_done(records, later))
        finally:
            closer.cancel()
            if ticker is not None:
                ticker.cancel()

    app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    channel = BatchTopic(app, topics=[topic], value_serializer="raw", key_serializer="raw")
    app.agent(channel, name=name)(agent)
    return ledger


async def _seek_back(fleet: Fleet, topic: str, partition: int, offset: int) -> None:
    """Seek the consumer's ``partition`` of ``topic`` back to ``offset``, so its records are
    fetched and delivered again (in the consumer's own thread, bounded)."""
    consumer = fleet_consumer(fleet.app)
    timeout_s = fleet.runtime.settings.kafka_timeout_ms / 1000 * 2
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.seek_back(TP(topic, partition), offset)
    except Exception as e:  # the consumer is rebalancing, or Kafka is away (TimeoutError too)
        raise StreamUnavailable(
            f"seeking {topic}/{partition} back to {offset} failed: {e!r}"
        ) from e


def _log_end(fleet: Fleet, topic: str, partition: int) -> int | None:
    """The partition's end as the consumer's last fetch saw it (None: not fetched yet)."""
    consumer = fleet_consumer(fleet.app)
    try:
        end = consumer.highwater(TP(topic, partition))
    except Exception:  # not assigned (a rebalance), or the consumer not started
        return None
    return int(end) if end is not None else None


class _Activity:
    """``async with activity``: a batch is being handled; ``idle_for`` says how long none was."""

    def __init__(self) -> None:
        self._busy = 0
        self._since = time.monotonic()

    async def __aenter__(self) -> None:
        self._busy += 1

    async def __aexit__(self, *exc: object) -> None:
        self._busy -= 1
        self._since = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        return self._busy == 0 and time.monotonic() - self._since >= seconds


async def _skip_hole(fleet: Fleet, topic: str, partition: int, start: int, end: int) -> None:
    """Tell the consumer that ``[start, end)`` of the partition holds no record."""
    consumer = fleet_consumer(fleet.app)
    await consumer.skip_offsets(TP(topic, partition), start, end)


def stored_events(
    fleet: Fleet,
    role: str,
    handle: Callable[[list[Event], Sequence[Record]], Awaitable[Awaitable[object] | Acks | None]],
) -> Handle:
    """Decode ``events.stored`` records; dead-letter what is not a stored event, handle the rest."""
    rt = fleet.runtime

    async def decoded(records: Sequence[Record]) -> Awaitable[object] | Acks | None:
        pairs, letters = decode_stored(records, max_event_bytes=rt.settings.max_event_bytes)
        if letters:
            send = partial(rt.dead_letters[role].send, letters)
            await until_done(send, role=role, metrics=rt.metrics)
        events, kept = [event for event, _ in pairs], [record for _, record in pairs]
        if not tracing.enabled():
            done = await until_done(partial(handle, events, kept), role=role, metrics=rt.metrics)
        else:
            with tracing.consumed(role, [(r.headers, _traced(e, r)) for e, r in pairs]):
                done = await until_done(
                    partial(handle, events, kept), role=role, metrics=rt.metrics
                )
        if isinstance(done, Acks) and letters:  # the dead-lettered records are decided too
            return Acks([*done.records, *(letter.record for letter in letters)])
        return done

    return decoded


def _traced(event: Event, record: Record) -> dict[str, str | int | bool]:
    """What a consumer span of one stored event names."""
    return {
        "eventfleet.event_id": event.id,
        "eventfleet.aggregate": f"{event.aggregate_type}:{event.aggregate_id}",
        "eventfleet.version": event.version or 0,
        "messaging.kafka.offset": record.offset,
    }


def register_agents(fleet: Fleet) -> None:
    """Declare the agents of the roles this process runs."""
    rt = fleet.runtime
    names = rt.names
    if "appender" in fleet.roles:
        appender = rt.appender

        async def append(records: Sequence[Record]) -> Acks:
            return Acks(await appender.handle(records))

        async def revoked(sender: object, revoked: Partitions = None, **kwargs: object) -> None:
            appender.forget({tp.partition for tp in revoked or () if tp.topic == names.events})

        async def assigned(sender: object, assigned: Partitions = None, **kwargs: object) -> None:
            appender.forget(set())  # a new assignment: cached heads may be another's now
            appender.assign({tp.partition for tp in assigned or () if tp.topic == names.events})

        fleet.app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
        fleet.app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
        ledger = batch_agent(
            fleet,
            name="appender",
            role="appender",
            topic=names.events,
            handle=append,
            tick=appender.expire,
            tick_when=appender.holds_work,
        )
        appender.hold_past_gaps(ledger.open_below)
    if "forwarder" in fleet.roles:
        register_forwarder(fleet)
    if "pm" in fleet.roles and rt.processes:
        register_process_managers(fleet)
    if "snapshotter" in fleet.roles:
        table = rule_table(fleet.app, topic=names.snapshot_rules, partitions=rt.settings.partitions)
        rt.snapshotter.attach(FaustRuleStates(table))
        audits = fleet.audit_loop

        async def snapshot(events: list[Event], records: Sequence[Record]) -> Awaitable[object]:
            if audits is not None:
                audits.saw([(e.aggregate_type, e.aggregate_id) for e in events])
            # Rebuilds run in the background; the batch's offsets commit once they are done.
            return asyncio.gather(*await rt.snapshotter.handle(events))

        handle = stored_events(fleet, "snapshotter", snapshot)
        batch_agent(
            fleet, name="snapshotter", role="snapshotter", topic=names.stored, handle=handle
        )
    if "bridge" in fleet.roles:

        async def bridge(events: list[Event], records: Sequence[Record]) -> None:
            await rt.bridge.handle(list(zip(events, records, strict=True)))

        handle = stored_events(fleet, "bridge", bridge)
        batch_agent(fleet, name="bridge", role="bridge", topic=names.stored, handle=handle)
    if "projection" in fleet.roles:
        projections = rt.domains.projections()
        for name in sorted(fleet.projections or projections):
            register_projection(fleet, projections[name])
    if "commands" in fleet.roles:

        async def commands(records: Sequence[Record]) -> None:
            await asyncio.gather(*(commands_in_order(fleet, group) for group in by_key(records)))

        batch_agent(fleet, name="commands", role="commands", topic=names.commands, handle=commands)


def register_forwarder(fleet: Fleet) -> None:
    """The forwarder's agent on events.stored: a partition's records in offset order, none past
    one not received (``InOrder``). Its rebalance hooks tell the forwarder which partitions it
    owns: a revoke waits for the produce in flight (so the next owner reads back all it wrote),
    a new partition is read back before anything of it is produced again."""
    rt = fleet.runtime
    forwarder, stored = rt.forwarder, rt.names.stored
    forwarder.track(partial(fleet.positions.committed, fleet.app.conf.id, stored))

    def gap_below(partition: int, offset: int) -> bool:
        return ledger.open_below(partition, offset)

    in_order = InOrder(forwarder.handle, gap_below)

    async def forward(events: list[Event], records: Sequence[Record]) -> Acks:
        return Acks(await in_order.take(list(zip(events, records, strict=True))))

    async def forward_ready() -> list[Record]:
        return await in_order.tick()

    # Records held of a partition are dropped with it (revoked, or not assigned again):
    # unacked, its next owner reads them again from the commit.
    async def revoked(sender: object, revoked: Partitions = None, **kwargs: object) -> None:
        gone = {tp.partition for tp in revoked or () if tp.topic == stored}
        in_order.forget(gone)
        await forwarder.revoked(gone)

    async def assigned(sender: object, assigned: Partitions = None, **kwargs: object) -> None:
        owned = {tp.partition for tp in assigned or () if tp.topic == stored}
        in_order.forget(in_order.partitions() - owned)  # held before the rebalance
        await forwarder.assigned(owned)

    fleet.app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    fleet.app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    handle = stored_events(fleet, "forwarder", forward)
    ledger = batch_agent(
        fleet,
        name="forwarder",
        role="forwarder",
        topic=stored,
        handle=handle,
        tick=forward_ready,
        tick_when=in_order.holds_work,
    )


def register_process_managers(fleet: Fleet) -> None:
    """The pm role's agent on events.stored: a partition's records in offset order, none past
    one not received (``InOrder``: an instance skips a copy at or below the version it reacted
    to, so a version handed on before an earlier one would be lost to it)."""
    rt = fleet.runtime
    runner, stored = rt.runner, rt.names.stored

    def gap_below(partition: int, offset: int) -> bool:
        return ledger.open_below(partition, offset)

    in_order = InOrder(runner.handle, gap_below)

    async def react(events: list[Event], records: Sequence[Record]) -> Acks:
        return Acks(await in_order.take(list(zip(events, records, strict=True))))

    async def ready() -> list[Record]:
        return await in_order.tick()

    async def revoked(sender: object, revoked: Partitions = None, **kwargs: object) -> None:
        in_order.forget({tp.partition for tp in revoked or () if tp.topic == stored})

    async def assigned(sender: object, assigned: Partitions = None, **kwargs: object) -> None:
        owned = {tp.partition for tp in assigned or () if tp.topic == stored}
        in_order.forget(in_order.partitions() - owned)

    fleet.app.on_partitions_revoked.connect(revoked)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    fleet.app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types receivers narrower than the (sender, partitions) faust calls them with
    handle = stored_events(fleet, "pm", react)
    ledger = batch_agent(
        fleet, name="pm", role="pm", topic=stored, handle=handle, tick=ready,
        tick_when=in_order.holds_work,
    )  # fmt: skip


def register_projection(fleet: Fleet, projection: Projection) -> None:
    """One agent ``projection-<name>`` on events.stored (its own group with --role projection)."""
    rt = fleet.runtime
    views = rt.views(projection.collection)
    runner = ProjectionRunner(
        projection,
        views=views,
        events=rt.events,
        metrics=rt.metrics,
        dead_letters=rt.dead_letters["projection"],
        upcast=rt.domains.upcast,
    )
    lag = fleet.projection_lag(projection.name)

    async def project(events: list[Event], records: Sequence[Record]) -> None:
        await runner.handle(events)
        lag.after(records)

    name = f"projection-{projection.name}"
    handle = stored_events(fleet, "projection", project)
    batch_agent(fleet, name=name, role="projection", topic=rt.names.stored, handle=handle)


def by_key(records: Sequence[Record]) -> list[list[Record]]:
    """Records grouped by Kafka key, each group in offset order."""
    groups: dict[bytes | None, list[Record]] = {}
    for record in records:
        groups.setdefault(record.key, []).append(record)
    return list(groups.values())


async def commands_in_order(fleet: Fleet, records: Sequence[Record]) -> None:
    """One aggregate's commands one after another: its order is the order of the topic."""
    for record in records:
        await command_from_topic(fleet, record)


async def command_from_topic(fleet: Fleet, record: Record) -> None:
    """Handle one command record and reply on commands.replies (keyed like the request)."""
    rt = fleet.runtime
    try:
        obj = orjson.loads(record.value)
        if not isinstance(obj, dict):
            raise InvalidInput("a command must be a JSON object")
        aggregate_type = str(obj.pop("aggregate_type", ""))
        aggregate_id = str(obj.pop("aggregate_id", ""))
        # A redelivered record must not append twice: its position is its command id.
        obj.setdefault("command_id", f"{record.topic}:{record.partition}:{record.offset}")
        request: CommandRequest | None = parse_request(
            aggregate_type, aggregate_id, orjson.dumps(obj), max_bytes=rt.settings.max_body_bytes
        )
    except (orjson.JSONDecodeError, InvalidInput) as e:
        request, answer = None, error(400, "invalid_command", f"{e}")
    if request is not None:
        with tracing.span(
            "commands process", parent=record.headers, kind=tracing.SpanKind.CONSUMER
        ):
            answer = await until_done(
                lambda: _handled(fleet, request), role="commands", metrics=rt.metrics
            )
    reply = orjson.dumps(
        {"status": answer.status, "body": answer.body, "source_offset": record.offset}
    )
    await until_done(
        lambda: rt.producer.send(
            rt.names.command_replies, Outgoing(record.key, reply, record.headers)
        ),
        role="commands",
        metrics=rt.metrics,
    )


async def _handled(fleet: Fleet, request: CommandRequest) -> Answer:
    outcome = await fleet.runtime.commands.handle(request)
    if isinstance(outcome, NotDone | Unknown):
        # Nothing written, or an unknown outcome: pause and retry rather than reply. The
        # command id (the record's position) derives the event id, so a retry is safe.
        raise Unavailable(outcome.message)
    return answer_of(outcome)
