"""Events shared by every live subscriber of a process: opened and encoded once while shared,
opened again once the entry expires (an erased subject's data is not served from here longer
than ``ttl_s``), and what a subscriber gets is byte for byte what ``/events`` encodes."""

from __future__ import annotations

from collections.abc import Sequence

from tests.clock import Clock
from topics.envelope import Event, encode, new_event
from workers.http.live.shared import SharedEvents, text_frame


class Opener:
    def __init__(self) -> None:
        self.opened: list[str] = []

    async def __call__(self, events: Sequence[Event]) -> list[Event]:
        self.opened += [e.id for e in events]
        return [e.with_version(e.version or 0) for e in events]  # a new instance, as opening makes


def event(n: int) -> Event:
    return new_event("chat_room", "r1", "MessageSent", {"message_id": f"m{n}", "content": "hi"},
                     version=n)  # fmt: skip


async def test_many_subscribers_open_and_encode_an_event_once() -> None:
    opener, clock = Opener(), Clock(0.0)
    shared = SharedEvents(opener, ttl_s=1.0, clock=clock)
    batch = [event(1), event(2)]
    views = [await shared.open(batch) for _ in range(100)]  # a room's hundred subscribers
    assert opener.opened == [batch[0].id, batch[1].id]
    assert all(view[0] is views[0][0] for view in views)  # one opened instance for all
    frames = [shared.render(view) for view in views]
    assert frames[0] == [(b"1", encode(views[0][0])), (b"2", encode(views[0][1]))]
    assert all(f[0][1] is frames[0][0][1] for f in frames)  # encoded once


async def test_an_entry_expires_and_the_cache_stays_bounded() -> None:
    opener, clock = Opener(), Clock(0.0)
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


class OpenNow:
    """``open_now`` as the shredder's: opens without waiting unless a key is missing."""

    def __init__(self) -> None:
        self.keys_held = True
        self.opened: list[str] = []

    def __call__(self, events: Sequence[Event]) -> list[Event] | None:
        if not self.keys_held:
            return None
        self.opened += [e.id for e in events]
        return [e.with_version(e.version or 0) for e in events]


async def test_a_live_event_is_made_ready_once_without_waiting_and_shared_with_open() -> None:
    opener, now, clock = Opener(), OpenNow(), Clock(0.0)
    shared = SharedEvents(opener, open_now=now, ttl_s=1.0, clock=clock)
    first = event(1)
    entries = [shared.ready(first) for _ in range(10)]  # a room's ten subscribers
    assert now.opened == [first.id] and all(e is entries[0] for e in entries)
    assert entries[0] is not None and (await shared.open([first]))[0] is entries[0].event
    assert opener.opened == []  # open found it shared
    now.keys_held = False
    assert shared.ready(event(2)) is None  # a key must be fetched first: open does it
    clock.now = 1.5
    now.keys_held = True
    assert shared.ready(first) is not entries[0]  # expired: made again, as open would


def test_the_frames_are_the_event_as_events_has_it_in_sse_and_in_a_websocket_text_frame() -> None:
    shared = SharedEvents(Opener(), open_now=OpenNow())
    entry = shared.ready(event(7))
    assert entry is not None
    json = encode(entry.event)
    assert entry.sse_frame(chunked=False) == b"id: 7\ndata: " + json + b"\n\n"
    body = b"id: 7\ndata: " + json + b"\n\n"
    assert entry.sse_frame(chunked=True) == b"%x\r\n" % len(body) + body + b"\r\n"
    frame = entry.websocket_frame()
    assert frame[0] == 0x81  # final, text, unmasked
    assert (frame[1] == len(json) and frame[2:] == json) or (
        frame[1] == 126 and int.from_bytes(frame[2:4], "big") == len(json) and frame[4:] == json
    )
    assert entry.made() == entry.event.occurred_at.timestamp()


def test_a_websocket_text_frame_carries_each_length_form() -> None:
    for size, header in ((125, 2), (126, 4), (65535, 4), (65536, 10)):
        frame = text_frame(b"x" * size)
        assert len(frame) == header + size and frame[0] == 0x81
        if header == 2:
            assert frame[1] == size
        elif header == 4:
            assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
        else:
            assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size


async def test_what_readers_see_is_upcast_before_it_is_opened() -> None:
    seen: list[int] = []

    def upcast(e: Event) -> Event:
        seen.append(e.version or 0)
        return e.with_version((e.version or 0) * 10)  # stands for a new schema version

    shared = SharedEvents(Opener(), upcast=upcast, open_now=OpenNow())
    [opened] = await shared.open([event(1)])
    ready = shared.ready(event(2))
    assert opened.version == 10 and ready is not None and ready.event.version == 20
    assert seen == [1, 2]


def test_an_upcaster_that_fails_leaves_the_event_to_the_subscriptions_own_path() -> None:
    def failing(e: Event) -> Event:
        raise ValueError("this upcaster is broken")

    shared = SharedEvents(Opener(), upcast=failing, open_now=OpenNow())
    assert shared.ready(event(1)) is None  # never raises where the feed dispatches
