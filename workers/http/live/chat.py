"""Chat over one WebSocket, commands out and the room's events in: ``GET /v1/rooms/{room_id}/ws``.

The client sends chat commands (``MessageSent``, ``MessageEdited``, ``MessageDeleted``,
``MessageRead``) as the body of ``POST /v1/chat_room/{room_id}/events`` would carry them,
with a ``command_id``; they take the very same command path (marker, store judge, the
command memory's true answers). On the same socket it gets, as JSON text messages:

- ``{"kind": "answer", "command_id", "status", "body"}``: the HTTP answer to each command
  (202 accepted, or the refusal with HTTP's status and error code);
- ``{"kind": "event", "event"}``: every event of the room as it is stored, exactly as
  ``/events`` returns it, catch-up first (``after_version``), each once and in order;
- ``{"kind": "stored", "command_id", "event_id", "version"}``: one of its commands is stored;
- ``{"kind": "error", ...}`` then a close (1013) when it read too slowly: resume with
  ``after_version``;
- ``{"kind": "error", "error": "credential_expired", "after_version"}`` then a close (4401)
  when the credential it was opened with expires (from then on no command is taken): sign in
  again and resume with ``after_version``;
- ``{"kind": "error", "error": "history_compacted", "whole_from", "after_version"}`` then a
  close (4410) when the catch-up reached versions stored nowhere any more: the events before
  them were sent, none after; resume from ``whole_from`` knowing the hole (a socket opened in
  front of one is refused, ``410``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import orjson

from snapshot_rules.projection import Apply, View
from topics.envelope import AGGREGATE_ID_RE, Actor, Event, encode
from topics.errors import EventfleetError, HistoryGone, InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.http import declared
from workers.http.declared import SubscribeQuery
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.edge.streaming import STREAMED, WebSocket
from workers.http.live.chat_page import register_chat_page
from workers.http.live.connections import Connection
from workers.http.live.streams import (
    LiveServer,
    authorize_read,
    check_transport,
    principal_of,
    start_position,
)
from workers.http.live.transports import (
    WS_CREDENTIAL_EXPIRED,
    WS_HISTORY_COMPACTED,
    WS_TRY_AGAIN_LATER,
    CredentialExpired,
    Expiring,
    close_reason,
    compacted_notice,
    expired_notice,
)
from workers.roles.command.requests import parse_request
from workers.roles.outcomes import Refused
from workers.roles.read.live import AggregateSubscription, SlowSubscriber, TooManySubscriptions
from workers.runtime.answers import Answer, answer_of, error, failure
from workers.runtime.fleet import Fleet

ROOM_TYPE = "chat_room"
CHAT_COMMANDS = frozenset({"MessageSent", "MessageEdited", "MessageDeleted", "MessageRead"})
MAX_UNSTORED = 1000
"""Commands of one socket remembered until stored (their ``stored`` message); the oldest
is forgotten past it (its event still arrives)."""


class ChatSocket:
    """One client's chat connection to one room."""

    def __init__(
        self,
        fleet: Fleet,
        live: LiveServer,
        room_id: str,
        actor: Actor | None,
        connection: Connection,
        deadline: float | None = None,
    ) -> None:
        self._fleet = fleet
        self._actor = actor  # from the upgrade request's credentials, never from a message
        self._deadline = deadline  # when those credentials expire (None: never)
        self._live = live
        self._room_id = room_id
        self._connection = connection  # a write stuck past two heartbeats ends it
        self._mine: dict[str, str] = {}  # command_id -> event_id, until stored
        self._sending = asyncio.Lock()

    async def send(self, ws: WebSocket, message: JsonObject | bytes) -> None:
        text = message if isinstance(message, bytes) else orjson.dumps(message)
        async with self._sending:
            await self._connection.write(ws.send_text(text))

    async def command(self, ws: WebSocket, body: bytes) -> None:
        """Run one command through the command path; answer it on the socket."""
        command_id: str | None = None
        try:
            limit = self._fleet.runtime.settings.max_body_bytes
            request = parse_request(ROOM_TYPE, self._room_id, body, max_bytes=limit)
            command_id = request.command_id
            if not command_id:
                raise InvalidInput(
                    "field 'command_id' is required on the socket: its answer and its stored "
                    "event are matched by it."
                )
            if request.type not in CHAT_COMMANDS:
                raise InvalidInput(
                    f"type {request.type!r} is not a chat command here; send one of "
                    f"{', '.join(sorted(CHAT_COMMANDS))}."
                )
        except EventfleetError as e:
            await self.answer(ws, command_id, failure(e))
            return
        if self._deadline is not None and time.time() >= self._deadline:
            answer = error(
                401,
                "unauthenticated",
                "the credential of this socket expired; sign in again "
                "and reconnect (a new ticket) with after_version.",
                reason="credential_expired",
            )
            await self.answer(ws, command_id, answer)
            return
        if self._fleet.draining:
            answer = error(503, "shutting_down", "this worker is draining; retry on another.")
            await self.answer(ws, command_id, answer)
            return
        with self._fleet.serving():
            outcome = await self._fleet.runtime.commands.handle(replace(request, actor=self._actor))
        if isinstance(outcome, Refused) and outcome.code == "forbidden":
            self._fleet.door.count_forbidden(str(outcome.details.get("reason", "domain_rule")))
        answer = answer_of(outcome)
        if answer.status < 300 and isinstance(answer.body.get("event_id"), str):
            if len(self._mine) >= MAX_UNSTORED:
                self._mine.pop(next(iter(self._mine)))
            self._mine[command_id] = answer.body["event_id"]
        await self.answer(ws, command_id, answer)

    async def answer(self, ws: WebSocket, command_id: str | None, answer: Answer) -> None:
        message = {
            "kind": "answer",
            "command_id": command_id,
            "status": answer.status,
            "body": answer.body,
        }
        await self.send(ws, message)

    async def stream(self, ws: WebSocket, subscription: AggregateSubscription) -> None:
        """Every stored event of the room, and a ``stored`` note for this socket's own."""
        batches = subscription.batches()
        try:
            async for batch in Expiring(batches, self._deadline):
                for event in batch:
                    await self.send(ws, b'{"kind":"event","event":' + encode(event) + b"}")
                    await self._note_stored(ws, event)
                self._live.sent("room", subscription, batch)
        except CredentialExpired as e:
            resume = subscription.resume
            with contextlib.suppress(Exception):
                await self.send(ws, {"kind": "error", **expired_notice(e, resume)})
            await ws.close(WS_CREDENTIAL_EXPIRED, close_reason(resume))
        except SlowSubscriber as e:
            self._live.metrics.slow_closes.labels("room").inc()
            notice = {
                "kind": "error",
                "error": "slow_client",
                "message": str(e),
                "after_version": e.after_version,
            }
            with contextlib.suppress(Exception):
                await ws.send_text(orjson.dumps(notice))
            await ws.close(WS_TRY_AGAIN_LATER, "slow_client")
        except HistoryGone as e:
            notice = {"kind": "error", **compacted_notice(e, subscription.resume)}
            with contextlib.suppress(Exception):
                await ws.send_text(orjson.dumps(notice))
            await ws.close(WS_HISTORY_COMPACTED, f"history_compacted whole_from={e.whole_from}")
        except EventfleetError as e:
            body = {"kind": "error", **failure(e).body, **subscription.resume}
            with contextlib.suppress(Exception):
                await ws.send_text(orjson.dumps(body))
            await ws.close(WS_TRY_AGAIN_LATER, "error")
        except (ConnectionError, TimeoutError):
            await ws.close()
        finally:
            await batches.aclose()

    async def _note_stored(self, ws: WebSocket, event: Event) -> None:
        command_id = event.metadata.command_id
        if command_id is not None and self._mine.get(command_id) == event.id:
            del self._mine[command_id]
            note = {
                "kind": "stored",
                "command_id": command_id,
                "event_id": event.id,
                "version": event.version,
            }
            await self.send(ws, note)


class RoomChanges:
    """The room's messages as they change: each event folded onto the room's view by the
    projection's own pure ``apply``, sent as what it changed (``changed`` messages, ``removed``
    message ids, and when a receipt moved, ``reads``: the receipts that changed, and
    ``readers_left``: members the room's cap evicted), with the event's version."""

    def __init__(self, apply: Apply, start: View | None) -> None:
        self._apply = apply
        self.view = start

    def render(self, events: Sequence[Event]) -> list[tuple[bytes, bytes]]:
        out = []
        for event in events:
            before, self.view = self.view, self._apply(self.view, event)
            old = {m["message_id"]: m for m in (before or {}).get("messages", [])}
            new = {m["message_id"]: m for m in self.view.get("messages", [])}
            body: JsonObject = {
                "version": event.version,
                "type": event.type,
                "changed": [m for key, m in new.items() if old.get(key) != m],
                "removed": [key for key in old if key not in new],
            }
            # The fold replaces ``reads`` only when a receipt moves (identity, not a compare of
            # every member's entry per event); a subscriber gets what moved, not every member.
            old_reads, new_reads = (before or {}).get("reads"), self.view.get("reads")
            if old_reads is not new_reads:
                moved, left = reads_moved(old_reads or {}, new_reads or {})
                body["reads"] = moved
                if left:
                    body["readers_left"] = left
            out.append((b"%d" % (event.version or 0), orjson.dumps(body)))
        return out


def reads_moved(
    before: Mapping[str, Json], after: Mapping[str, Json]
) -> tuple[JsonObject, list[str]]:
    """The receipts of ``after`` that differ from ``before``'s, and the members that left."""
    moved = {reader: read for reader, read in after.items() if before.get(reader) != read}
    return moved, [reader for reader in before if reader not in after]


def check_room(room_id: str) -> None:
    if not AGGREGATE_ID_RE.match(room_id):
        raise InvalidInput(f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}.")


def register_room_view(fleet: Fleet, live: LiveServer, api: Api) -> None:
    """``GET /v1/rooms/{room_id}/subscribe``: the room's messages as they change (SSE or a
    WebSocket), from ``after_version`` (the view at that version is the starting point)."""
    rt = fleet.runtime
    projection = next(
        (p for p in rt.domains.projections().values() if ROOM_TYPE in p.aggregate_types), None
    )
    if projection is None:
        return
    domain = rt.domains.get(ROOM_TYPE)
    apply = projection.apply

    async def room_view(request: Request, query: SubscribeQuery) -> Response:
        room_id = request.params["room_id"]
        check_room(room_id)
        after = start_position(request, query.after_version)
        authorize_read(fleet, request, ROOM_TYPE, room_id)
        check_transport(request)
        principal = principal_of(fleet, request)
        start = None
        if after > 0:  # the room as of the client's position, opened as readers see it
            folded = await rt.loader.exactly_at(domain, room_id, version=after)
            start = await rt.shredder.open(folded.state)
        connection = None
        try:
            async with live.connection("view", principal, request) as connection:
                subscription = await live.subscription((ROOM_TYPE, room_id), after, kind="view")
                changes = RoomChanges(apply, start)
                return await live.stream(
                    request, connection, subscription, kind="view", render=changes.render
                )
        except (TooManySubscriptions, HistoryGone) as e:
            return json_response(failure(e))
        return live.ended(connection)

    api.bind(declared.ROOM_VIEW, room_view)


def register_chat(fleet: Fleet, live: LiveServer, api: Api) -> None:
    """Serve the room's live view everywhere, and ``/v1/rooms/{room_id}/ws`` and the chat page
    on a process that takes commands."""
    rt = fleet.runtime
    if ROOM_TYPE not in rt.domains:
        return
    register_room_view(fleet, live, api)
    if "commands" not in fleet.roles:
        return

    async def chat(request: Request) -> Response:
        room_id = request.params["room_id"]
        check_room(room_id)
        if not request.websocket:
            return json_response(
                error(406, "not_acceptable", "this route is a WebSocket: open it with an upgrade.")
            )
        after = start_position(request)
        authorize_read(fleet, request, ROOM_TYPE, room_id)
        principal = principal_of(fleet, request)
        connection = None
        try:
            async with live.connection("room", principal, request) as connection:
                socket = ChatSocket(
                    fleet, live, room_id, fleet.door.actor(request), connection, request.expires
                )
                subscription = await live.subscription((ROOM_TYPE, room_id), after, kind="room")
                return await serve(request, socket, subscription, connection)
        except (TooManySubscriptions, HistoryGone) as e:
            return json_response(failure(e))
        return live.ended(connection)

    api.bind(declared.ROOM_SOCKET, chat)
    register_chat_page(fleet, api)


async def serve(
    request: Request,
    socket: ChatSocket,
    subscription: AggregateSubscription,
    connection: Connection,
) -> Response:
    """Take the socket's commands while its room's events stream to it (a message over
    EVENTFLEET_MAX_BODY_BYTES is closed 1009 by the server: ``Limits.max_ws_message_bytes``)."""
    ws = WebSocket(request)
    try:
        await ws.accept()
    except ConnectionError:
        return STREAMED  # the client left during the handshake
    connection.answered = True
    streaming = asyncio.create_task(socket.stream(ws, subscription))
    try:
        async for message in ws:
            if message.text is None:
                await socket.answer(
                    ws,
                    None,
                    error(
                        400, "bad_request", "send commands as JSON text messages, not binary ones."
                    ),
                )
                continue
            await socket.command(ws, message.text.encode())
    except (ConnectionError, TimeoutError):
        pass
    finally:
        streaming.cancel()
        await asyncio.gather(streaming, return_exceptions=True)
        await ws.close()
    return STREAMED
