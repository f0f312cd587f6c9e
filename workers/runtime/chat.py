"""The chat room read side: the ``chat_messages`` view and ``GET /v1/rooms/{room_id}/messages``.

The same room can be answered from the view (fast, may lag behind the store) or from
replay (snapshot + tail, exact at the moment it is read, and the only source for a past
moment via ``as_of``). Both fold with ``step_messages``, so they agree once the view has
caught up; the answer carries the version it reflects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snapshot_rules.domain import Domains
from snapshot_rules.domains.chat_room import CHAT_ROOM, iso, step_messages, window
from snapshot_rules.domains.order import ORDER
from topics.envelope import AGGREGATE_ID_RE, Event, parse_utc
from topics.errors import EventfleetError, InvalidEnvelope, InvalidInput
from workers.adapters.mongo import database
from workers.ports import EventStore
from workers.roles.commands import Answer, error
from workers.roles.state import StateLoader
from workers.roles.views import MongoViewStore, Projection, View

if TYPE_CHECKING:
    from workers.runtime.fleet import Fleet

DEFAULT_LIMIT = 100
"""The bounded window: a room query answers at most this many of the newest messages by default."""
MAX_LIMIT = 1000
SOURCES = ("view", "replay")


def apply_chat_view(view: View | None, event: Event) -> View:
    """The ``chat_messages`` view of one room after one stored event (pure)."""
    current = view or {"messages": [], "ignored": 0, "updated_at": None}
    messages = step_messages(current["messages"], event)
    updated = {**current, "updated_at": iso(event.occurred_at)}
    if messages is None:
        return {**updated, "ignored": current["ignored"] + 1}
    return {**updated, "messages": messages}


CHAT_MESSAGES = Projection(
    name="chat_messages",
    collection="chat_messages",
    aggregate_types=frozenset([CHAT_ROOM.name]),
    apply=apply_chat_view,
)


def chat_domains() -> Domains:
    """``EVENTFLEET_DOMAINS=workers.runtime.chat:chat_domains``: order and chat room."""
    return Domains([ORDER, CHAT_ROOM])


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """One parsed ``GET /v1/rooms/{room_id}/messages``."""

    room_id: str
    limit: int
    before: str | None
    source: str
    as_of: str | None

    @classmethod
    def parse(cls, room_id: str, query: Mapping[str, str]) -> RoomQuery:
        if not AGGREGATE_ID_RE.match(room_id):
            raise InvalidInput(f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}.")
        raw_limit = query.get("limit") or str(DEFAULT_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise InvalidInput(
                f"query parameter limit={raw_limit!r} must be a whole number from 1 to {MAX_LIMIT}."
            )
        as_of = query.get("as_of") or None
        source = query.get("source") or ("replay" if as_of else "view")
        if source not in SOURCES:
            raise InvalidInput(f"query parameter source={source!r} must be 'view' or 'replay'.")
        if as_of and source == "view":
            raise InvalidInput(
                "as_of is answered from replay only; drop source=view or use source=replay."
            )
        return cls(room_id, int(raw_limit), query.get("before") or None, source, as_of)


class ChatQueries:
    """Answers room queries from the view or from replay; transport-neutral (returns an Answer)."""

    def __init__(
        self, *, views: MongoViewStore, loader: StateLoader, events: EventStore, domains: Domains
    ) -> None:
        self._views = views
        self._loader = loader
        self._events = events
        self._domains = domains

    async def messages(self, room_id: str, query: Mapping[str, str]) -> Answer:
        """200 with the window, 400 for a bad parameter, 404 for a room with no events."""
        try:
            parsed = RoomQuery.parse(room_id, query)
            if parsed.source == "view":
                found = await self._from_view(parsed.room_id)
            else:
                found = await self._from_replay(parsed.room_id, parsed.as_of)
            if found is None:
                at = " at that point" if parsed.as_of else ""
                return error(404, "not_found", f"chat room {room_id} has no events{at}.")
            version, messages = found
            page = window(messages, limit=parsed.limit, before=parsed.before)
        except InvalidEnvelope as e:
            return error(400, "bad_request", f"query parameter {e}.")
        except EventfleetError as e:
            return _failure(e)
        body = {"room_id": room_id, "source": parsed.source, "version": version, "messages": page}
        return Answer(200, body)

    async def _from_view(self, room_id: str) -> tuple[int, list[Any]] | None:
        ref = (CHAT_ROOM.name, room_id)
        doc = await self._views.load(ref)
        if doc is not None:
            return doc.version, list(doc.view["messages"])
        # No view yet: an unknown room, or one the projection has not reached.
        if await self._events.last_versions([ref]):
            return 0, []
        return None

    async def _from_replay(self, room_id: str, as_of: str | None) -> tuple[int, list[Any]] | None:
        domain = self._domains.get(CHAT_ROOM.name)
        if as_of is None:
            folded = await self._loader.latest(domain, room_id)
        else:
            moment = parse_utc(as_of, "as_of")
            folded = await self._loader.at(domain, room_id, as_of=moment)
        if folded.version == 0 or folded.state is None:
            return None
        return folded.version, list(folded.state["messages"])


def _failure(e: EventfleetError) -> Answer:
    from workers.runtime.http import (
        failure,  # imports faust.web: keep this module importable without it
    )

    return failure(e)


def chat_queries(fleet: Fleet) -> ChatQueries:
    rt = fleet.runtime
    db = database(rt.mongo, rt.settings.mongo_database)
    return ChatQueries(
        views=MongoViewStore(db, CHAT_MESSAGES.collection),
        loader=rt.loader,
        events=rt.events,
        domains=rt.domains,
    )


def register_chat_views(fleet: Fleet) -> None:
    """Declare ``GET /v1/rooms/{room_id}/messages`` on the fleet's web server."""
    from faust.web import View as WebView

    from workers.runtime.http import respond

    queries = chat_queries(fleet)

    @fleet.app.page("/v1/rooms/{room_id}/messages")
    class RoomMessages(WebView):  # type: ignore[misc]
        async def get(self, request: Any, room_id: str) -> Any:
            return respond(self, await queries.messages(room_id, request.query))
