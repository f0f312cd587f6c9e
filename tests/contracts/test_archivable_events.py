"""The ``ArchivableEvents`` capability, on every backend that claims it: events move in
idempotently and out by prefix, and a store that does not answer."""

from __future__ import annotations

import pytest

from topics.errors import StoreUnavailable

from .backends import Backend, backend_claiming, history

backend = backend_claiming("archive")


async def test_moving_out_inserts_what_is_missing_and_removes_a_prefix(backend: Backend) -> None:
    events, moves = backend.events, backend.moves
    written = history("mv", 10)
    assert await moves.insert_missing(written[:4]) == 4
    assert await moves.insert_missing(written) == 6  # again, half done before: the rest only
    assert await moves.insert_missing(written) == 0
    assert await moves.insert_missing([]) == 0
    assert await events.select(("order", "mv")) == written
    await events.append(history("other", 3))
    assert await moves.remove_through(("order", "mv"), 6) == 6
    assert await events.select(("order", "mv")) == written[6:]
    assert await moves.remove_through(("order", "mv"), 6) == 0
    assert await moves.remove_through(("order", "nobody"), 6) == 0
    assert len(await events.select(("order", "other"))) == 3  # another aggregate is untouched
    assert await events.find([written[0].id, written[9].id]) == {written[9].id: written[9]}


async def test_moves_raise_store_unavailable_when_the_store_is_down(backend: Backend) -> None:
    written = history("mv", 3)
    await backend.events.append(written)
    async with backend.outage() as down:
        moves = Backend(backend.name, down, backend.outage).moves
        with pytest.raises(StoreUnavailable):
            await moves.remove_through(("order", "mv"), 2)
        with pytest.raises(StoreUnavailable):
            await moves.insert_missing(history("in", 1))
    assert await backend.events.select(("order", "mv")) == written  # nothing was removed
    assert await backend.events.select(("order", "in")) == []
