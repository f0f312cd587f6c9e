"""Reading a chat room: the newest messages from its window, older pages from the store by version.

``GET /v1/rooms/{room_id}/messages?limit=N[&before_version=V | &before=<message id>]
[&source=view|replay][&as_of=T]`` answers the last ``limit`` live messages sent before version
``V`` (oldest first) and ``before_version``, the cursor of the next older page (null when there
is none). The newest messages come from the window (the ``chat_messages`` view, or the
replayed state); messages older than the window's ``horizon`` come from the event store,
walking backwards over the room's events in chunks, never by folding the room.

An older message may have been edited or deleted at any later version, so a page first reads
the edits and deletes stored after it (up to the version the answer reflects; one indexed
range of the room's events, filtered by type in the store), then walks back from the page's
start. Each message gets the changes that name it, oldest first, through the same
``ChatRules.change`` the window uses, so a page and the window agree on every message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from snapshot_rules.projection import Projection
from snapshot_rules.queries import QueryAnswer, QueryContext, QueryHandler
from snapshot_rules.replay import Folded
from topics.envelope import AGGREGATE_ID_RE, READ_VERSION_MAX, Event, parse_utc
from topics.errors import InvalidEnvelope, InvalidInput, NotFound
from topics.jsonvalue import Json
from workers.examples.domains.chat_rules import (
    DELETED,
    EDITED,
    SENT,
    ChatRules,
    Message,
    find,
    sent_message,
    unread_counts,
)

DEFAULT_LIMIT = 100
"""A room query answers at most this many of the newest messages by default."""
MAX_LIMIT = 1000
CHUNK = 200
"""Events per backwards read while building an older page."""
SOURCES = ("view", "replay")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}\Z")
ROOM = "chat_room"


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """One parsed ``GET /v1/rooms/{room_id}/messages``."""

    room_id: str
    limit: int
    before: str | None
    before_version: int | None
    source: str
    as_of: str | None

    @classmethod
    def parse(cls, room_id: str, query: Mapping[str, str]) -> RoomQuery:
        if not AGGREGATE_ID_RE.match(room_id):
            raise InvalidInput(f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}.")
        limit = _whole(query, "limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
        before_version = _whole(query, "before_version", None, READ_VERSION_MAX)
        before = query.get("before") or None
        if before is not None and before_version is not None:
            raise InvalidInput("give before (a message id) or before_version, not both.")
        as_of = query.get("as_of") or None
        source = query.get("source") or ("replay" if as_of else "view")
        if source not in SOURCES:
            raise InvalidInput(f"query parameter source={source!r} must be 'view' or 'replay'.")
        if as_of and source == "view":
            raise InvalidInput(
                "as_of is answered from replay only; drop source=view or use source=replay."
            )
        return cls(room_id, limit, before, before_version, source, as_of)


def _whole(query: Mapping[str, str], name: str, default: int | None, high: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _WHOLE_NUMBER.match(raw) or not 1 <= int(raw) <= high:
        raise InvalidInput(
            f"query parameter {name}={raw!r} must be a whole number from 1 to {high}."
        )
    return int(raw)


@dataclass(frozen=True, slots=True)
class Page:
    """Messages oldest first, and the cursor of the next older page (None: there is none)."""

    messages: list[Message]
    before_version: int | None


async def older_page(
    context: QueryContext,
    rules: ChatRules,
    room_id: str,
    *,
    before_version: int,
    up_to: int,
    limit: int,
) -> Page:
    """Up to ``limit`` live messages sent below ``before_version``, as of version ``up_to``."""
    ref = (ROOM, room_id)
    later = await _changes_after(context, ref, before_version, up_to)
    found: list[Message] = []
    cursor = before_version
    while cursor > 1:
        batch = await context.events_before(ref, before_version=cursor, limit=CHUNK)
        if not batch:
            break
        for event in batch:  # newest first
            cursor = event.version or 1
            message = _resolve(rules, event, later)
            if message is not None:
                found.append(message)
                if len(found) == limit:
                    return Page(found[::-1], cursor if cursor > 1 else None)
    return Page(found[::-1], None)


async def _changes_after(
    context: QueryContext, ref: tuple[str, str], start: int, up_to: int
) -> dict[str, list[Event]]:
    """Edits and deletes stored at versions ``start..up_to``, by message id, newest first."""
    later: dict[str, list[Event]] = {}
    cursor = up_to + 1
    while cursor > start:
        batch = await context.events_before(
            ref,
            before_version=cursor,
            limit=CHUNK,
            types=[EDITED, DELETED],
            after_version=start - 1,
        )
        for event in batch:
            if (event.version or 0) < start:
                return later
            later.setdefault(str(event.data.get("message_id")), []).append(event)
        if len(batch) < CHUNK:
            return later
        cursor = batch[-1].version or 0
    return later


def _resolve(rules: ChatRules, event: Event, later: dict[str, list[Event]]) -> Message | None:
    """Walking back: remember a change, or resolve a sent message against the changes after it."""
    message_id = str(event.data.get("message_id"))
    if event.type in (EDITED, DELETED):
        later.setdefault(message_id, []).append(event)
        return None
    if event.type != SENT:
        return None
    message: Message | None = sent_message(event)
    # The changes after it that name it, oldest first (an edit names the newest send of its id).
    for change in reversed(later.pop(message_id, [])):
        if message is None:
            break  # deleted: later changes of it are ignored, as the window ignores them
        changed = rules.change(message, change)
        if not isinstance(changed, str):  # "ignored" leaves it as it was
            message = changed
    return message


def room_messages_query(rules: ChatRules, projection: Projection) -> QueryHandler:
    """The handler of ``GET /v1/rooms/{room_id}/messages`` for a room declared with ``rules``."""

    async def room_messages(
        context: QueryContext, params: Mapping[str, str], query: Mapping[str, str]
    ) -> QueryAnswer:
        parsed = RoomQuery.parse(params["room_id"], query)
        try:
            found = await _window(context, projection, parsed)
        except InvalidEnvelope as e:
            raise InvalidInput(f"query parameter {e}.") from e
        if found is None:
            at = " at that point" if parsed.as_of else ""
            raise NotFound(f"chat room {parsed.room_id} has no events{at}.")
        page = await _page(context, rules, parsed, found.version, found.room)
        body = {
            "room_id": parsed.room_id,
            "source": found.source,
            "version": found.version,
            "messages": page.messages,
            "before_version": page.before_version,
            "more": page.before_version is not None,
            "reads": unread_counts(found.room),  # each kept reader's receipt and unread count
        }
        return QueryAnswer(200, body, next_page=_next_page(parsed, page))

    return room_messages


def _next_page(parsed: RoomQuery, page: Page) -> dict[str, str] | None:
    """The query of the next older page, keeping the reader's choices; None on the last page."""
    if page.before_version is None:
        return None
    query = {"before_version": str(page.before_version), "limit": str(parsed.limit)}
    if parsed.as_of is not None:
        query["as_of"] = parsed.as_of
    if parsed.source != ("replay" if parsed.as_of else "view"):
        query["source"] = parsed.source
    return query


async def _page(
    context: QueryContext, rules: ChatRules, parsed: RoomQuery, version: int, room: Json
) -> Page:
    """The answer's messages: from the window, then older ones from the store if needed."""
    window: list[Message] = list(room["messages"])
    horizon: int = room["horizon"]
    end = parsed.before_version
    if parsed.before is not None:
        index = find(window, parsed.before)
        if index is None:
            raise InvalidInput(
                f"before={parsed.before!r} is not among the room's newest {len(window)} messages "
                "(it may be older, or deleted); page with before_version=<version>: every "
                "message carries its version, and each answer gives the next page's."
            )
        end = window[index]["version"]
    newest = [m for m in window if end is None or m["version"] < end][-parsed.limit :]
    start = newest[0]["version"] if newest else (end if end is not None else version + 1)
    older_from = min(start, horizon)
    missing = parsed.limit - len(newest)
    if missing == 0 or older_from <= 1:
        more = bool(newest) and (newest[0] is not window[0] or horizon > 1) and start > 1
        return Page(newest, start if more else None)
    older = await older_page(
        context, rules, parsed.room_id, before_version=older_from, up_to=version, limit=missing
    )
    return Page(older.messages + newest, older.before_version)


@dataclass(frozen=True, slots=True)
class _Window:
    """A room's window at a version, and where it came from (``view`` or ``replay``)."""

    version: int
    room: Json
    source: str


async def _window(
    context: QueryContext, projection: Projection, parsed: RoomQuery
) -> _Window | None:
    """The room's window from the view or from replay; None when the room has no events. A
    room whose view is missing (the projection has not reached it, or the view was lost) is
    answered from replay, never as an empty room."""
    if parsed.source == "view":
        doc = await context.view(projection.name, (ROOM, parsed.room_id))
        if doc is not None:
            return _Window(doc.version, doc.view, "view")
    folded: Folded
    if parsed.as_of is None:
        folded = await context.latest(ROOM, parsed.room_id)
    else:
        moment = parse_utc(parsed.as_of, "as_of")
        folded = await context.state_at(ROOM, parsed.room_id, as_of=moment)
    if folded.version == 0 or folded.state is None:
        return None
    return _Window(folded.version, folded.state, "replay")
