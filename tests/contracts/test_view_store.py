"""The ViewStore and ViewStaging contracts: guarded writes, and rebuilds swapped in whole."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from topics.errors import StoreError, StoreUnavailable
from workers.adapters.memory import MemoryDatabase, MemoryViewStore
from workers.ports import LIVE, ViewDoc

from .conftest import Stores

LIVE_VIEWS = "chat_messages"


def doc(aggregate_id: str, version: int, generation: str = LIVE, **view: object) -> ViewDoc:
    return ViewDoc("chat_room", aggregate_id, version, dict(view) or {"v": version}, generation)


async def test_writes_are_guarded_on_version_and_generation(stores: Stores) -> None:
    views = stores.views(LIVE_VIEWS)
    assert views.name == LIVE_VIEWS
    first = doc("race", 1)
    assert await views.write(None, first)
    assert not await views.write(None, doc("race", 1, messages=[]))  # exists already
    second = doc("race", 2)
    assert await views.write(first, second)
    assert not await views.write(first, doc("race", 3))  # a writer that read version 1
    # Same version, other generation: a writer that read the view before a rebuild swapped it.
    before_swap = replace(second, generation="older")
    assert not await views.write(before_swap, doc("race", 3))
    assert await views.load(("chat_room", "race")) == second
    # The guard is equality, not order: whoever read the current document may replace it.
    assert await views.write(second, doc("race", 1, note="recomputed"))
    assert not await views.write(doc("ghost", 1), doc("ghost", 2))  # nothing to replace


async def test_loads_give_copies_of_what_was_written(stores: Stores) -> None:
    views = stores.views(LIVE_VIEWS)
    a, b = doc("a", 3, messages=[{"id": "m1"}]), doc("b", 1)
    assert await views.write(None, a) and await views.write(None, b)
    assert await views.load_many([a.ref, b.ref, a.ref, ("chat_room", "none")]) == {
        a.ref: a,
        b.ref: b,
    }
    assert await views.load_many([]) == {}
    assert await views.load(("chat_room", "none")) is None
    assert await views.versions() == {a.ref: 3, b.ref: 1}
    loaded = await views.load(a.ref)
    assert loaded is not None
    loaded.view["messages"].append({"id": "by a reader"})
    assert await views.load(a.ref) == a
    assert await stores.views("other").versions() == {}  # collections are apart


async def test_insert_many_refuses_a_taken_view_but_inserts_the_others(stores: Stores) -> None:
    views = stores.views(LIVE_VIEWS)
    await views.insert_many([doc("r1", 1)])
    with pytest.raises(StoreError) as caught:
        await views.insert_many([doc("r9", 1), doc("r1", 5), doc("r8", 1)])
    assert not caught.value.retriable and "r1" in str(caught.value)
    assert await views.versions() == {
        ("chat_room", "r1"): 1,
        ("chat_room", "r9"): 1,
        ("chat_room", "r8"): 1,
    }
    await views.insert_many([])


async def test_a_swap_replaces_the_live_views_in_one_step(stores: Stores) -> None:
    live = stores.views(LIVE_VIEWS)
    await live.write(None, doc("old", 4))
    staging = stores.staging(LIVE_VIEWS)
    temp = await staging.staging("g1")
    assert "g1" in temp.name and temp.name != LIVE_VIEWS
    assert await temp.versions() == {}
    await temp.insert_many([doc("new", 2, "g1")])
    assert await live.versions() == {("chat_room", "old"): 4}  # nothing live before the swap
    await staging.swap(temp)
    assert await live.versions() == {("chat_room", "new"): 2}
    assert await live.load(("chat_room", "new")) == doc("new", 2, "g1")
    assert await stores.collections() == [LIVE_VIEWS]
    with pytest.raises(StoreError) as caught:  # the staging store was consumed by the swap
        await staging.swap(temp)
    assert not caught.value.retriable and temp.name in str(caught.value)


async def test_an_empty_rebuild_swaps_in_no_views(stores: Stores) -> None:
    live = stores.views(LIVE_VIEWS)
    await live.write(None, doc("ghost", 1))
    staging = stores.staging(LIVE_VIEWS)
    await staging.swap(await staging.staging("empty"))
    assert await live.versions() == {}


async def test_a_discarded_staging_is_gone_and_cannot_be_swapped(stores: Stores) -> None:
    live = stores.views(LIVE_VIEWS)
    await live.write(None, doc("kept", 1))
    staging = stores.staging(LIVE_VIEWS)
    temp = await staging.staging("g2")
    await temp.insert_many([doc("lost", 1, "g2")])
    await staging.discard(temp)
    await staging.discard(temp)  # dropping what is gone is no error
    assert await stores.collections() == [LIVE_VIEWS]
    with pytest.raises(StoreError):
        await staging.swap(temp)
    assert await live.versions() == {("chat_room", "kept"): 1}


async def test_a_generation_is_staged_once(stores: Stores) -> None:
    staging = stores.staging(LIVE_VIEWS)
    await staging.staging("g3")
    with pytest.raises(StoreError, match="g3") as caught:
        await staging.staging("g3")
    assert not caught.value.retriable


class _Foreign:
    """Looks like a view store by name, but this staging did not make it."""

    name = "chat_messages_rebuild_foreign"


async def test_a_store_the_staging_did_not_make_is_refused(stores: Stores) -> None:
    staging = stores.staging(LIVE_VIEWS)
    foreign = (
        _Foreign() if stores.kind == "memory" else MemoryViewStore(MemoryDatabase(), "x")
    )  # of another adapter: the real staging cannot rename it
    with pytest.raises(TypeError, match="was not made by"):
        await staging.swap(foreign)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="was not made by"):
        await staging.discard(foreign)  # type: ignore[arg-type]


async def test_every_call_raises_store_unavailable_when_the_store_is_down(
    stores: Stores,
) -> None:
    live = stores.views(LIVE_VIEWS)
    await live.write(None, doc("d1", 1))
    temp = await stores.staging(LIVE_VIEWS).staging("before")
    async with stores.outage() as down:
        views, staging = down.views(LIVE_VIEWS), down.staging(LIVE_VIEWS)
        results = await asyncio.gather(
            views.load(("chat_room", "d1")),
            views.load_many([("chat_room", "d1")]),
            views.versions(),
            views.write(None, doc("d2", 1)),
            views.insert_many([doc("d3", 1)]),
            staging.staging("during"),
            # A staging store made before the outage: the same database, so down too.
            down.views(temp.name).insert_many([doc("d4", 1)]),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) and r.retriable for r in results), results
        assert await views.load_many([]) == {}  # no round trip, no error
    assert await live.versions() == {("chat_room", "d1"): 1}
    assert await stores.collections() == sorted([LIVE_VIEWS, temp.name])
