"""Helpers the storage tests share: bounded polling, raw reads, rebuilding from events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from tests.waiting import wait_for
from topics.envelope import Event
from workers.storage import apply_patch

Document = dict[str, Any]


async def poll(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 5.0, what: str
) -> None:
    """Wait until ``await condition()`` is true; fail naming ``what`` after ``timeout_s``."""
    await wait_for(condition, timeout_s=timeout_s, what=what)


def canonical(value: Any) -> bytes:
    """JSON with sorted keys: tells 1 from 1.0 and true, unlike ``==``."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def rebuild(events: list[Event]) -> Any:
    """Fold the diffs of a document's events from nothing, as a catching-up client would."""
    state: Any = None
    for event in events:
        state = apply_patch(event.data["diff"], state)
    return state


def content(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("_id", "version")}


async def raw_doc(db: AsyncDatabase[Document], collection: str, doc_id: str) -> Document | None:
    """The stored document as MongoDB has it, markers included."""
    return await db[collection].find_one({"_id": doc_id})


async def raw_events(db: AsyncDatabase[Document], collection: str, doc_id: str) -> list[Document]:
    cursor = db["events"].find(
        {"aggregate_type": collection, "aggregate_id": doc_id}, sort=[("version", 1)]
    )
    return [doc async for doc in cursor]
