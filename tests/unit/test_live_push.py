"""Live events pushed to a connection: what one turn of the event loop pushes goes out in one
write, after what came before and before anything the connection's task writes; a socket over
its high-water mark, a closed connection or an event not ready refuses (the subscription's
bounded buffer then carries it)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from tests.waiting import within
from topics.envelope import Event, encode, new_event
from workers.http.live.connections import Connection
from workers.http.live.push import Outbox, Sink
from workers.http.live.shared import SharedEvents
from workers.metric_kinds import LoopCounter, LoopHistogram
from workers.metrics import LATENCY_BUCKETS_S


class FakeTransport:
    def __init__(self, high: int = 10_000) -> None:
        self.written: list[bytes] = []
        self.buffered = 0  # what the kernel has not taken yet
        self.high = high
        self.closing = False
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.wrote.set()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.high // 4, self.high

    def is_closing(self) -> bool:
        return self.closing


async def _unopened(events: Sequence[Event]) -> list[Event]:
    return list(events)


def event(n: int) -> Event:
    return new_event("chat_room", "r1", "MessageSent", {"message_id": f"m{n}", "content": "hi"},
                     version=n)  # fmt: skip


def sink_on(transport: FakeTransport, *, websocket: bool = False, closed: bool = False) -> Sink:
    registry = CollectorRegistry()
    return Sink(
        transport,  # type: ignore[arg-type]
        outbox=Outbox(LoopHistogram("x_seconds", "x", LATENCY_BUCKETS_S, registry), linger_s=0),
        ready=SharedEvents(_unopened, open_now=list).ready,
        counted=LoopCounter("x_total", "x", "kind", registry).labels("aggregate"),
        websocket=websocket,
        is_closed=lambda: closed,
    )


async def a_turn() -> None:
    await asyncio.sleep(0)


async def test_what_one_turn_pushes_goes_out_in_one_chunk_after_the_turn() -> None:
    transport = FakeTransport()
    sink = sink_on(transport)
    assert sink(event(1)) and sink(event(2))
    assert transport.written == []  # not yet: the turn may push more
    await a_turn()
    [chunk] = transport.written
    size, _, rest = chunk.partition(b"\r\n")
    body = rest.removesuffix(b"\r\n")
    assert int(size, 16) == len(body) and body.count(b"id: ") == 2
    assert body.index(b"id: 1\n") < body.index(b"id: 2\n")
    assert sink(event(3))
    await a_turn()
    size, _, rest = transport.written[1].partition(b"\r\n")
    assert rest.startswith(b"id: 3\n") and int(size, 16) == len(rest) - 2  # a chunk of its own


async def test_a_socket_over_its_high_water_mark_refuses_with_what_the_turn_holds() -> None:
    first = event(1)
    size = len(b"id: 1\ndata: %s\n\n" % encode(first))
    transport = FakeTransport(high=size * 3 // 2)
    sink = sink_on(transport)
    assert sink(first)
    assert not sink(event(2))  # with the first, over the mark: the buffer carries it
    await a_turn()
    transport.buffered = transport.high
    assert not sink(event(3))  # the kernel has not taken the first yet
    transport.buffered = 0
    assert sink(event(3))


async def test_pushed_frames_go_before_what_the_connections_task_writes() -> None:
    transport = FakeTransport()
    connection = Connection(request=None, task=None)  # type: ignore[arg-type]
    connection.sink = sink = sink_on(transport)
    assert sink(event(1))

    async def task_write() -> None:
        transport.write(b"written by the task")

    await connection.write(task_write())  # in the same turn: the push goes first
    assert len(transport.written) == 2 and transport.written[1] == b"written by the task"
    assert b"id: 1\n" in transport.written[0]
    await a_turn()
    assert len(transport.written) == 2  # flushed once


async def test_a_closed_sink_writes_what_it_holds_then_refuses() -> None:
    transport = FakeTransport()
    sink = sink_on(transport)
    assert sink(event(1))
    sink.close()
    assert len(transport.written) == 1 and not sink(event(2))
    gone = FakeTransport()
    left = sink_on(gone)
    assert left(event(1))
    gone.closing = True  # the client left before the turn ended: nothing more is written
    await a_turn()
    assert gone.written == [] and not left(event(2))


async def test_websocket_frames_of_a_turn_are_written_together_and_never_after_a_close() -> None:
    transport = FakeTransport()
    sink = sink_on(transport, websocket=True)
    assert sink(event(1)) and sink(event(2))
    await a_turn()
    [data] = transport.written
    assert data[0] == 0x81 and data.count(b'"version":') == 2
    closed = FakeTransport()
    sink = sink_on(closed, websocket=True, closed=True)
    sink(event(1))  # the socket closes: the connection ends, what it held is dropped
    await a_turn()
    assert closed.written == []


def counting_sinks(
    transports: Sequence[FakeTransport], *, linger_s: float = 0
) -> tuple[list[Sink], LoopHistogram, CollectorRegistry]:
    """Sinks of one process (one outbox, one shared event per version)."""
    registry = CollectorRegistry()
    latency = LoopHistogram("x_seconds", "x", LATENCY_BUCKETS_S, registry)
    outbox = Outbox(latency, linger_s=linger_s)
    shared = SharedEvents(_unopened, open_now=list)
    counted = LoopCounter("x_total", "x", "kind", registry).labels("aggregate")
    sinks = [Sink(t, outbox=outbox, ready=shared.ready, counted=counted)  # type: ignore[arg-type]
             for t in transports]  # fmt: skip
    return sinks, latency, registry


def observed(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("x_seconds_count")


async def test_what_turns_push_within_the_linger_goes_out_in_one_write() -> None:
    transport = FakeTransport()
    [sink], _, _ = counting_sinks([transport], linger_s=0.05)
    assert sink(event(1))
    await a_turn()
    assert sink(event(2))  # a later turn (the feed's next read) within the linger
    await a_turn()
    assert transport.written == []  # lingering: more may come
    await within(transport.wrote.wait(), timeout_s=5, what="the write after the linger")
    [chunk] = transport.written
    assert chunk.count(b"id: ") == 2 and chunk.index(b"id: 1\n") < chunk.index(b"id: 2\n")


async def test_one_event_pushed_to_many_connections_is_one_frame_observed_per_delivery() -> None:
    transports = [FakeTransport() for _ in range(10)]
    sinks, _, registry = counting_sinks(transports)
    shared = event(1)  # as the feed hands it to every listener of its channel
    assert all(sink(shared) for sink in sinks)
    await a_turn()
    assert all(t.written == transports[0].written for t in transports)
    assert observed(registry) == 10  # every delivery, observed in one go
    assert registry.get_sample_value("x_total", {"kind": "aggregate"}) == 10


async def test_frames_dropped_for_a_client_that_left_are_not_counted_as_delivered() -> None:
    here, gone = FakeTransport(), FakeTransport()
    sinks, _, registry = counting_sinks([here, gone])
    shared = event(1)
    assert all(sink(shared) for sink in sinks)
    gone.closing = True  # the client left before the flush
    await a_turn()
    assert gone.written == [] and len(here.written) == 1
    assert observed(registry) == 1
    assert registry.get_sample_value("x_total", {"kind": "aggregate"}) == 1
