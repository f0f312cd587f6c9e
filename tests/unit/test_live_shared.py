"""Events shared by every live subscriber of a process: opened and encoded once while shared,
opened again once the entry expires (an erased subject's data is not served from here longer
than ``ttl_s``), and what a subscriber gets is byte for byte what ``/events`` encodes."""

from __future__ import annotations

from collections.abc import Sequence

from topics.envelope import Event, encode, new_event
from workers.runtime.live import SharedEvents


class Opener:
    def __init__(self) -> None:
        self.opened: list[str] = []

    async def __call__(self, events: Sequence[Event]) -> list[Event]:
        self.opened += [e.id for e in events]
        return [e.with_version(e.version or 0) for e in events]  # a new instance, as opening makes


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def event(n: int) -> Event:
    return new_event("chat_room", "r1", "MessageSent", {"message_id": f"m{n}", "content": "hi"},
                     version=n)  # fmt: skip


async def test_many_subscribers_open_and_encode_an_event_once() -> None:
    opener, clock = Opener(), Clock()
    shared = SharedEvents(opener, ttl_s=1.0, clock=clock)
    batch = [event(1), event(2)]
    views = [await shared.open(batch) for _ in range(100)]  # a room's hundred subscribers
    assert opener.opened == [batch[0].id, batch[1].id]
    assert all(view[0] is views[0][0] for view in views)  # one opened instance for all
    frames = [shared.render(view) for view in views]
    assert frames[0] == [(b"1", encode(views[0][0])), (b"2", encode(views[0][1]))]
    assert all(f[0][1] is frames[0][0][1] for f in frames)  # encoded once


async def test_an_entry_expires_and_the_cache_stays_bounded() -> None:
    opener, clock = Opener(), Clock()
    shared = SharedEvents(opener, ttl_s=1.0, size=3, clock=clock)
    first = event(1)
    await shared.open([first])
    clock.now = 1.5  # past the ttl: opened again (a key erased meanwhile is asked again)
    await shared.open([first])
    assert opener.opened == [first.id, first.id]
    await shared.open([event(n) for n in range(2, 7)])
    assert len(shared._entries) == 3
    # An event that is not shared (expired, evicted) is still rendered exactly.
    lone = event(9)
    assert shared.render([lone]) == [(b"9", encode(lone))]
