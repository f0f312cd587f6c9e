"""The Faust agents, kept thin: decode records, call the role's logic, ack only after success."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from topics.errors import InvalidInput, Unavailable
from workers.roles.commands import Answer, CommandRequest, error, parse_request
from workers.roles.deadletter import DeadLetter, Record, decode_stored
from workers.roles.retry import until_done
from workers.runtime.projections import PROJECTIONS, register_projection_agents

if TYPE_CHECKING:
    from workers.runtime.fleet import Fleet

MAX_UNACKED_SNAPSHOT_BATCHES = 16


def to_record(event: Any) -> Record:
    message = event.message
    headers = message.headers or []
    if isinstance(headers, dict):
        headers = list(headers.items())
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=[(k, v) for k, v in headers],
    )


def register_agents(fleet: Fleet) -> None:
    """Declare the agents of the roles this process runs."""
    app, rt, settings = fleet.app, fleet.runtime, fleet.runtime.settings
    within_s = settings.batch_within_ms / 1000

    def topic(name: str) -> Any:
        return app.topic(name, value_serializer="raw", key_serializer="raw")

    async def dead_letter(role: str, letters: Sequence[DeadLetter]) -> None:
        if letters:
            await until_done(
                partial(rt.dead_letters[role].send, letters), role=role, metrics=rt.metrics
            )

    if "appender" in fleet.roles:

        @app.agent(topic(rt.names.events), name="appender")
        async def appender(stream: Any) -> None:
            async for batch in stream.noack_take(settings.batch_size, within=within_s):
                async with fleet.batch("appender"):
                    records = [to_record(event) for event in batch]
                    await until_done(
                        partial(rt.appender.handle, records), role="appender", metrics=rt.metrics
                    )
                    for event in batch:
                        await stream.ack(event)

    if "forwarder" in fleet.roles:

        @app.agent(topic(rt.names.stored), name="forwarder")
        async def forwarder(stream: Any) -> None:
            async for batch in stream.noack_take(settings.batch_size, within=within_s):
                async with fleet.batch("forwarder"):
                    pairs, letters = decode_stored(
                        [to_record(e) for e in batch], max_event_bytes=settings.max_event_bytes
                    )
                    await dead_letter("forwarder", letters)
                    await until_done(
                        partial(rt.forwarder.handle, pairs), role="forwarder", metrics=rt.metrics
                    )
                    for event in batch:
                        await stream.ack(event)

    if "snapshotter" in fleet.roles:
        unacked = asyncio.Semaphore(MAX_UNACKED_SNAPSHOT_BATCHES)

        async def ack_when_done(
            stream: Any, batch: Sequence[Any], rebuilds: Sequence[asyncio.Task[None]]
        ) -> None:
            try:
                await asyncio.gather(*rebuilds)
                for event in batch:
                    await stream.ack(event)
            except Exception as e:  # a rebuild no retry can fix: stop, leave the batch unacked
                fleet.fatal("snapshotter", e)
            finally:
                unacked.release()

        @app.agent(topic(rt.names.stored), name="snapshotter")
        async def snapshotter(stream: Any) -> None:
            async for batch in stream.noack_take(settings.batch_size, within=within_s):
                async with fleet.batch("snapshotter"):
                    pairs, letters = decode_stored(
                        [to_record(e) for e in batch], max_event_bytes=settings.max_event_bytes
                    )
                    await dead_letter("snapshotter", letters)
                    events = [event for event, _ in pairs]
                    rebuilds = await until_done(
                        partial(rt.snapshotter.handle, events),
                        role="snapshotter",
                        metrics=rt.metrics,
                    )
                    # Rebuilds run in the background; this batch's offsets commit once they are done.
                    await unacked.acquire()
                    fleet.spawn(ack_when_done(stream, batch, rebuilds))

    if "projection" in fleet.roles:
        register_projection_agents(fleet, fleet.projections or sorted(PROJECTIONS))

    if "commands" in fleet.roles:

        @app.agent(topic(rt.names.commands), name="commands")
        async def commands(stream: Any) -> None:
            async for batch in stream.noack_take(settings.batch_size, within=within_s):
                async with fleet.batch("commands"):
                    records = [to_record(e) for e in batch]
                    await asyncio.gather(
                        *(commands_in_order(fleet, group) for group in by_key(records))
                    )
                    for event in batch:
                        await stream.ack(event)


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
        answer = await until_done(
            lambda: _handled(fleet, request), role="commands", metrics=rt.metrics
        )
    reply = orjson.dumps(
        {"status": answer.status, "body": answer.body, "source_offset": record.offset}
    )
    await until_done(
        lambda: rt.producer.send(
            rt.names.command_replies, key=record.key, value=reply, headers=record.headers
        ),
        role="commands",
        metrics=rt.metrics,
    )


async def _handled(fleet: Fleet, request: CommandRequest) -> Answer:
    answer = await fleet.runtime.commands.handle(request)
    if answer.status == 503 and not answer.body.get("stored"):
        # Nothing was written: pause and retry rather than reply "unavailable".
        raise Unavailable(str(answer.body.get("message")))
    return answer
