"""What the DocumentStore and ChangeFeed contracts share: a planned change of a game document
with its event, and a cache (``Invalidations``) that records what a change feed told it."""

from __future__ import annotations

from dataclasses import dataclass, field

from topics.envelope import Metadata, new_event
from workers.storage.ports import PlannedChange


def change(
    version: int, gold: int, *, doc_id: str = "g1", event_id: str | None = None
) -> PlannedChange:
    """Game ``doc_id`` at ``version`` with ``gold``, and the event that records it."""
    event = new_event(
        "games", doc_id, "GameUpdated" if version > 1 else "GameCreated",
        {"operation": "update", "diff": {"gold": gold}, "changed_paths": ["gold"]},
        metadata=Metadata(client_id="t"), version=version, id=event_id,
    )  # fmt: skip
    expected = None if version == 1 else version - 1
    return PlannedChange(doc_id, expected, {"_id": doc_id, "version": version, "gold": gold}, event)


@dataclass
class Seen:
    """An ``Invalidations`` that records what a change feed told it."""

    keys: list[str] = field(default_factory=list)
    clears: int = 0

    def invalidate(self, key: str) -> None:
        self.keys.append(key)

    def clear(self) -> None:
        self.clears += 1
