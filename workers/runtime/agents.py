"""The Faust agents of the roles, kept thin: each decodes its batch, calls its role's logic and
says what to ack; the batch loop they share (take, retry, ack) is ``workers.runtime.batches``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import orjson

from snapshot_rules.projection import Projection
from topics.envelope import Event
from topics.errors import InvalidInput, Unavailable
from workers import tracing
from workers.ports import Outgoing, Record
from workers.roles.append.in_order import InOrder
from workers.roles.command.requests import CommandRequest, parse_request
from workers.roles.deadletter import decode_stored
from workers.roles.outcomes import NotDone, Unknown
from workers.roles.read.projections import ProjectionRunner
from workers.roles.retry import until_done
from workers.runtime.answers import Answer, answer_of, error
from workers.runtime.batches import Acks, Handle, Ticks, batch_agent
from workers.runtime.fleet import Fleet
from workers.stream.faust_types import Partitions, on_rebalance
from workers.stream.rule_table import FaustRuleStates, rule_table

log = logging.getLogger(__name__)


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

        on_rebalance(fleet.app, revoked=revoked, assigned=assigned)
        ledger = batch_agent(
            fleet,
            name="appender",
            role="appender",
            topic=names.events,
            handle=append,
            ticks=Ticks(appender.expire, when=appender.holds_work),
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
    """The forwarder's agent on events.stored (``in_order_agent``). Its rebalance hooks tell the
    forwarder which partitions it owns: a revoke waits for the produce in flight (so the next
    owner reads back all it wrote), a new partition is read back before anything of it is
    produced again."""
    rt = fleet.runtime
    forwarder = rt.forwarder
    forwarder.track(partial(fleet.positions.committed, fleet.app.conf.id, rt.names.stored))
    in_order_agent(
        fleet,
        "forwarder",
        forwarder.handle,
        then_revoked=forwarder.revoked,
        then_assigned=forwarder.assigned,
    )


def register_process_managers(fleet: Fleet) -> None:
    """The pm role's agent on events.stored (``in_order_agent``: an instance skips a copy at or
    below the version it reacted to, so a version handed on before an earlier one would be lost
    to it)."""
    in_order_agent(fleet, "pm", fleet.runtime.runner.handle)


Partitioned = Callable[[set[int]], Awaitable[None]]
"""A role's rebalance hook: the partitions of events.stored revoked from it, or now its own."""


def in_order_agent(
    fleet: Fleet,
    role: str,
    hand_on: Callable[[list[tuple[Event, Record]]], Awaitable[object]],
    *,
    then_revoked: Partitioned | None = None,
    then_assigned: Partitioned | None = None,
) -> None:
    """An agent ``role`` on events.stored that hands a partition's records on in offset order,
    none past one not received (``InOrder``). Records held of a partition are dropped with it
    (revoked, or not assigned again): unacked, its next owner reads them again from the commit;
    then ``then_revoked`` and ``then_assigned`` hear which partitions went and which it owns."""
    stored = fleet.runtime.names.stored

    def gap_below(partition: int, offset: int) -> bool:
        return ledger.open_below(partition, offset)

    in_order = InOrder(hand_on, gap_below)

    async def take(events: list[Event], records: Sequence[Record]) -> Acks:
        return Acks(await in_order.take(list(zip(events, records, strict=True))))

    async def revoked(sender: object, revoked: Partitions = None, **kwargs: object) -> None:
        gone = {tp.partition for tp in revoked or () if tp.topic == stored}
        in_order.forget(gone)
        if then_revoked is not None:
            await then_revoked(gone)

    async def assigned(sender: object, assigned: Partitions = None, **kwargs: object) -> None:
        owned = {tp.partition for tp in assigned or () if tp.topic == stored}
        in_order.forget(in_order.partitions() - owned)  # held before the rebalance
        if then_assigned is not None:
            await then_assigned(owned)

    on_rebalance(fleet.app, revoked=revoked, assigned=assigned)
    ledger = batch_agent(
        fleet,
        name=role,
        role=role,
        topic=stored,
        handle=stored_events(fleet, role, take),
        ticks=Ticks(in_order.tick, when=in_order.holds_work),
    )


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


def command_request(record: Record, *, max_bytes: int) -> CommandRequest:
    """The append a ``commands`` record asks for: its JSON object with ``aggregate_type`` and
    ``aggregate_id`` beside the body's fields. A redelivered record must not append twice, so
    a record that gives no command id (or null: the same, as over HTTP) has its position,
    ``<topic>:<partition>:<offset>``, as its command id.

    Raises orjson.JSONDecodeError or InvalidInput (as ``parse_request``)."""
    obj = orjson.loads(record.value)
    if not isinstance(obj, dict):
        raise InvalidInput("a command must be a JSON object")
    aggregate_type = str(obj.pop("aggregate_type", ""))
    aggregate_id = str(obj.pop("aggregate_id", ""))
    if obj.get("command_id") is None:
        obj["command_id"] = f"{record.topic}:{record.partition}:{record.offset}"
    return parse_request(aggregate_type, aggregate_id, orjson.dumps(obj), max_bytes=max_bytes)


async def command_from_topic(fleet: Fleet, record: Record) -> None:
    """Handle one command record and reply on commands.replies (keyed like the request)."""
    rt = fleet.runtime
    try:
        request: CommandRequest | None = command_request(
            record, max_bytes=rt.settings.max_body_bytes
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
