"""Crypto-shredding on the memory adapters: sealed before produce, opened by readers, erased."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from snapshot_rules.domain import Domains
from snapshot_rules.personal import SEALED_PREFIX, personal
from tests.clock import Clock
from tests.roles.pipeline import EVENTS, SETTINGS, Pipeline, pipeline
from topics.envelope import decode, new_event
from topics.errors import InvalidEventData, InvalidInput, StoreUnavailable
from workers.adapters.memory import MemoryActionLog, MemoryKeyStore
from workers.examples.domains.account import ACCOUNT
from workers.examples.domains.chat_room import CHAT_ROOM, MAX_CONTENT
from workers.metrics import create_metrics
from workers.roles.command.requests import CommandRequest
from workers.roles.outcomes import Refused
from workers.roles.personal import (
    ERASED,
    Erased,
    Shredder,
    erase_subject,
    key_id_of,
    open_value,
    seal_value,
)
from workers.runtime.adapters import memory_adapters
from workers.runtime.answers import answer_of, erasure_answer
from workers.runtime.compose import Runtime

MARKER = "zq-marker-7f3a"


def sent(mid: str, sender: str, content: str) -> dict[str, Any]:
    return {"message_id": mid, "sender_id": sender, "content": content}


async def chat_pipeline() -> tuple[Pipeline, Shredder]:
    pipe = await pipeline(Domains([CHAT_ROOM]))
    return pipe, pipe.shredder


async def test_the_command_side_seals_before_anything_is_produced() -> None:
    pipe, shredder = await chat_pipeline()
    answer = await pipe.ask("chat_room:r1", "MessageSent", sent("m1", "ann", f"hi {MARKER}"))
    assert answer.status == 202, answer.body
    [record] = pipe.producer.records(EVENTS)
    assert MARKER.encode() not in record.value  # the events topic holds ciphertext only
    produced = decode(record.value)
    assert produced.data["content"].startswith(SEALED_PREFIX)
    assert produced.data["sender_id"] == "ann"  # the subject's id names the key: readable
    await pipe.flush()
    [stored] = await pipe.store.select(("chat_room", "r1"))
    assert stored.data["content"] == produced.data["content"]  # the store judged it sealed
    [opened] = await shredder.open_events([stored])
    assert opened.data == sent("m1", "ann", f"hi {MARKER}")
    state = await shredder.open((await pipe.loader.latest(CHAT_ROOM, "r1")).state)
    assert state["messages"][0]["content"] == f"hi {MARKER}"


async def test_plaintext_is_validated_before_it_is_sealed() -> None:
    pipe, _ = await chat_pipeline()
    answer = await pipe.ask(
        "chat_room:r1", "MessageSent", sent("m1", "ann", "x" * (MAX_CONTENT + 1))
    )
    assert answer.status == 422 and "content" in answer.body["message"]
    assert pipe.producer.records(EVENTS) == []
    # A sealed value is longer than its plaintext: the store's check accepts it as sealed.
    key = await MemoryKeyStore().key_for("ann")
    long_sealed = seal_value(key, "y" * MAX_CONTENT)
    event = new_event("chat_room", "r1", "MessageSent", sent("m1", "ann", long_sealed), version=1)
    CHAT_ROOM.check_as_written(event)
    with pytest.raises(InvalidEventData):  # but a plain value is still held to the schema
        CHAT_ROOM.check_as_written(
            new_event("chat_room", "r1", "MessageSent", sent("m1", "ann", "y" * (MAX_CONTENT + 1)))
        )


async def erase(
    shredder: Shredder, log: MemoryActionLog, subject: str, *, operator: str
) -> Erased | Refused:
    """``erase_subject`` told as the runtime tells it (``erasure_answer``)."""
    return await erase_subject(
        shredder, log, subject, operator=operator, via="test", cache_ttl_s=60, render=erasure_answer
    )


async def test_erasing_a_sender_erases_their_messages_only_and_transitions_keep_working() -> None:
    pipe, shredder = await chat_pipeline()
    await pipe.ask("chat_room:r1", "MessageSent", sent("m1", "ann", f"ann {MARKER}"))
    await pipe.ask("chat_room:r1", "MessageSent", sent("m2", "bob", "bob whole"))
    await pipe.flush()
    log = MemoryActionLog()
    erased = await erase(shredder, log, "ann", operator="dpo")
    assert isinstance(erased, Erased) and erased.keys_destroyed == 1
    assert (erased.already, erased.by, erased.unreadable_within_s) == (False, "dpo", 60)
    events = await shredder.open_events(await pipe.store.select(("chat_room", "r1")))
    assert events[0].data == {"message_id": "m1", "sender_id": "ann", "content": None, ERASED: True}
    assert events[1].data == sent("m2", "bob", "bob whole")
    state = await shredder.open((await pipe.loader.latest(CHAT_ROOM, "r1")).state)
    assert [m["content"] for m in state["messages"]] == [None, "bob whole"]
    assert state["messages"][0][ERASED] is True
    # The room goes on: ann edits her erased message (a new key), bob deletes his.
    assert (
        await pipe.ask("chat_room:r1", "MessageEdited", sent("m1", "ann", "new words"))
    ).status == 202
    assert (await pipe.ask("chat_room:r1", "MessageDeleted",
                           {"message_id": "m2", "sender_id": "bob"})).status == 202  # fmt: skip
    await pipe.flush()
    assert pipe.dead_letters() == []
    state = await shredder.open((await pipe.loader.latest(CHAT_ROOM, "r1")).state)
    assert [(m["message_id"], m["content"]) for m in state["messages"]] == [("m1", "new words")]
    [action] = await log.recent(limit=5)
    assert (action.action, action.target, action.operator, action.status) == (
        "erase",
        "ann",
        "dpo",
        200,
    )


async def test_erasing_twice_answers_the_first_erasure_and_an_unknown_subject_is_refused() -> None:
    shredder = Shredder(MemoryKeyStore())
    log = MemoryActionLog()
    await shredder.seal(CHAT_ROOM, "r1", sent("m1", "ann", "x"))
    first = await erase(shredder, log, "ann", operator="a")
    again = await erase(shredder, log, "ann", operator="b")
    assert isinstance(first, Erased) and isinstance(again, Erased)
    assert (again.already, again.keys_destroyed) == (True, 0)
    assert (again.by, again.erased_at) == (first.by, first.erased_at)
    unknown = await erase(shredder, log, "nobody", operator="a")
    assert isinstance(unknown, Refused) and unknown.code == "not_found"
    assert "'nobody'" in unknown.message and "sender_id" in unknown.message  # names the fix
    [audited] = await log.recent(limit=5)  # the erasure, once: a repeat or unknown changes nothing
    assert (audited.status, audited.operator, audited.via) == (200, "a", "test")
    assert audited.result == erasure_answer(first).body  # the trail keeps what the caller was told


async def test_what_is_sealed_under_a_subject_can_be_erased_and_nothing_else_is_sealed() -> None:
    pipe, shredder = await chat_pipeline()
    for sender in ("ann\nbob", "eve\x1b[2J", "\u2028"):  # no erasure could name them
        refused = await pipe.ask("chat_room:r1", "MessageSent", sent("m0", sender, "words"))
        assert (refused.status, refused.body["error"]) == (422, "invalid_data"), refused.body
        assert "data.sender_id must be 1 to 256 printable characters" in refused.body["message"]
    # An identity provider's subject (Auth0's "auth0|…", a name with a space) is sealed and erased.
    for n, sender in enumerate(("auth0|5f7c8ec7", "Alice Smith", "x" * 128)):
        sealed = await pipe.ask("chat_room:r1", "MessageSent", sent(f"m{n}", sender, "words"))
        assert sealed.status == 202, sealed.body
    await pipe.flush()
    stored = await pipe.store.select(("chat_room", "r1"))
    assert [e.data["sender_id"] for e in stored] == ["auth0|5f7c8ec7", "Alice Smith", "x" * 128]
    log = MemoryActionLog()
    for sender in ("auth0|5f7c8ec7", "Alice Smith", "x" * 128):
        erased = await erase(shredder, log, sender, operator="dpo")
        assert isinstance(erased, Erased) and erased.keys_destroyed == 1, erased


@pytest.mark.parametrize("operator", ["", "   ", "x" * 257, "dpo\nerased by root", "dpo\x1b[2J"])
async def test_an_operator_name_the_trail_could_not_print_erases_nothing(operator: str) -> None:
    shredder = Shredder(MemoryKeyStore())
    log = MemoryActionLog()
    await shredder.seal(CHAT_ROOM, "r1", sent("m1", "ann", "x"))
    with pytest.raises(InvalidInput, match="1 to 256 printable characters: who erases"):
        await erase(shredder, log, "ann", operator=operator)
    assert await log.recent(limit=5) == []
    erased = await erase(shredder, log, "ann", operator=" dpo ")  # the key was still there
    assert isinstance(erased, Erased) and not erased.already and erased.by == "dpo"


async def test_erasing_with_the_key_store_down_raises_and_records_and_destroys_nothing() -> None:
    keys = MemoryKeyStore()
    shredder, log = Shredder(keys), MemoryActionLog()
    sealed = await shredder.seal(CHAT_ROOM, "r1", sent("m1", "ann", "kept"))
    keys.down()
    with pytest.raises(StoreUnavailable):
        await erase(shredder, log, "ann", operator="dpo")
    keys.up()
    assert await log.recent(limit=5) == []
    assert (await Shredder(keys).open(sealed))["content"] == "kept"  # the key lives on
    erased = await erase(shredder, log, "ann", operator="dpo")  # a retry erases, once
    assert isinstance(erased, Erased) and (erased.already, erased.keys_destroyed) == (False, 1)
    assert len(await log.recent(limit=5)) == 1


async def test_another_process_forgets_an_erased_key_within_its_cache_lifetime() -> None:
    keys, clock = MemoryKeyStore(), Clock(0.0)
    writer = Shredder(keys, cache_ttl_s=30, clock=clock)
    reader = Shredder(keys, cache_ttl_s=30, clock=clock)
    data = await writer.seal(CHAT_ROOM, "r1", sent("m1", "ann", "secret words"))
    assert (await reader.open(data))["content"] == "secret words"  # now cached in the reader
    await writer.erase("ann", by="dpo", at=_now())
    assert (await writer.open(data))[ERASED] is True  # the erasing process: at once
    clock.now = 29.0
    assert (await reader.open(data))["content"] == "secret words"  # within the stated bound
    clock.now = 30.5
    assert (await reader.open(data)) == {**data, "content": None, ERASED: True}


async def test_another_process_never_seals_with_a_key_erased_elsewhere() -> None:
    keys = MemoryKeyStore()
    eraser, writer = Shredder(keys, cache_ttl_s=3600), Shredder(keys, cache_ttl_s=3600)
    before = await writer.seal(CHAT_ROOM, "r1", sent("m1", "ann", "before"))  # key cached
    await eraser.erase("ann", by="dpo", at=_now())
    after = await writer.seal(CHAT_ROOM, "r1", sent("m2", "ann", "after"))  # cache far from stale
    assert key_id_of(after["content"]) != key_id_of(before["content"])  # a new key at once
    assert (await eraser.open(after))["content"] == "after"  # readable: accepted, never lost
    assert (await eraser.open(before))[ERASED] is True


class CountingKeys(MemoryKeyStore):
    """The memory key store, counting the sealing side's checks (a fake, not a mock)."""

    def __init__(self) -> None:
        super().__init__()
        self.checks: list[list[str]] = []

    async def live(self, subjects: Sequence[str]) -> dict[str, str]:
        self.checks.append(sorted(subjects))
        return await super().live(subjects)


async def test_concurrent_seals_share_one_check_sent_after_each_of_them() -> None:
    keys = CountingKeys()
    shredder = Shredder(keys)
    people = [f"p{i}" for i in range(5)]
    await asyncio.gather(*(shredder.seal(CHAT_ROOM, "r", sent("m", p, "hi")) for p in people))
    keys.checks.clear()
    sealed = await asyncio.gather(
        *(shredder.seal(CHAT_ROOM, "r", sent(f"m{i}", p, "hi")) for i in range(4) for p in people)
    )
    assert keys.checks == [people]  # 20 seals, one read
    await keys.erase("p0", by="dpo", at=_now())  # as another process would: no local forgetting
    again = await shredder.seal(CHAT_ROOM, "r", sent("m9", "p0", "back"))
    assert key_id_of(again["content"]) not in {key_id_of(d["content"]) for d in sealed}
    assert keys.checks[-1] == ["p0"]


async def test_sealing_with_the_key_store_down_is_unavailable_and_seals_nothing() -> None:
    keys = MemoryKeyStore()
    shredder = Shredder(keys)
    await shredder.seal(CHAT_ROOM, "r1", sent("m1", "ann", "cached"))
    keys.down()
    with pytest.raises(StoreUnavailable):  # the cached key is not used unchecked
        await shredder.seal(CHAT_ROOM, "r1", sent("m2", "ann", "words"))
    keys.up()
    assert (await shredder.seal(CHAT_ROOM, "r1", sent("m3", "ann", "x")))["content"].startswith(
        SEALED_PREFIX
    )


async def test_a_personal_command_with_the_key_store_down_is_503_and_nothing_is_produced() -> None:
    memory = memory_adapters()
    rt = await Runtime.start(
        SETTINGS, roles=("commands",), domains=Domains([CHAT_ROOM]), metrics=create_metrics(),
        adapters=memory.adapters(),
    )  # fmt: skip
    try:
        ask = rt.commands.handle
        first = CommandRequest("chat_room", "r1", "MessageSent", sent("m1", "ann", "hi"))
        assert answer_of(await ask(first)).status == 202  # ann's key is cached now
        produced = len(memory.stream.produced.records(EVENTS))
        memory.stores.keys.down()
        again = CommandRequest("chat_room", "r1", "MessageSent", sent("m2", "ann", "hi"))
        answer = answer_of(await ask(again))
        assert answer.status == 503 and answer.body["error"] == "store_unavailable", answer.body
        assert len(memory.stream.produced.records(EVENTS)) == produced  # nothing written
    finally:
        await rt.stop()


async def test_opening_without_waiting_uses_only_the_keys_held_and_their_erasure_bound() -> None:
    keys, clock = MemoryKeyStore(), Clock(0.0)
    writer = Shredder(keys, cache_ttl_s=30, clock=clock)
    reader = Shredder(keys, cache_ttl_s=30, clock=clock)
    data = await writer.seal(CHAT_ROOM, "r1", sent("m1", "ann", "secret words"))
    stored = new_event("chat_room", "r1", "MessageSent", data, version=1)
    plain = new_event("chat_room", "r2", "MessageSent", sent("m1", "bob", "plain"), version=1)
    assert reader.open_events_now([plain]) == [plain]  # nothing sealed: nothing to fetch
    assert reader.open_events_now([stored]) is None  # the key is not held: open_events fetches
    [opened] = await reader.open_events([stored])
    assert reader.open_events_now([stored]) == [opened]  # now held: the same, without waiting
    await writer.erase("ann", by="dpo", at=_now())
    assert writer.open_events_now([stored]) == [
        replace(stored, data={**data, "content": None, ERASED: True})
    ]  # the erasing process: at once
    clock.now = 30.5
    assert reader.open_events_now([stored]) is None  # past the bound: asked again, never reused


async def test_sealing_while_erasing_never_leaks_plaintext() -> None:
    keys = MemoryKeyStore()
    shredder = Shredder(keys, cache_ttl_s=0.000001)
    sealed = await asyncio.gather(
        *(shredder.seal(CHAT_ROOM, "r1", sent(f"m{i}", "ann", f"{MARKER}{i}")) for i in range(50)),
        shredder.erase("ann", by="dpo", at=_now()),
        *(shredder.seal(CHAT_ROOM, "r1", sent(f"n{i}", "ann", f"{MARKER}{i}")) for i in range(50)),
    )
    for data in sealed:
        if isinstance(data, dict):
            assert MARKER not in repr(data) and data["content"].startswith(SEALED_PREFIX)


async def test_encryption_off_leaves_new_data_plain_and_still_opens_sealed_data() -> None:
    keys = MemoryKeyStore()
    on, off = Shredder(keys), Shredder(keys, enabled=False)
    sealed = await on.seal(CHAT_ROOM, "r1", sent("m1", "ann", "words"))
    assert await off.seal(CHAT_ROOM, "r1", sent("m2", "ann", "plain")) == sent("m2", "ann", "plain")
    assert (await off.open(sealed))["content"] == "words"


async def test_the_account_holder_is_sealed_under_the_account_id() -> None:
    shredder = Shredder(MemoryKeyStore())
    data = await shredder.seal(ACCOUNT, "acc-1", {"owner": "Ann Example"})
    assert data["owner"].startswith(SEALED_PREFIX)
    assert await shredder.open(data) == {"owner": "Ann Example"}
    await shredder.erase("acc-1", by="dpo", at=_now())
    assert await shredder.open({"state": data}) == {"state": {"owner": None, ERASED: True}}


async def test_a_tampered_or_foreign_value_does_not_open() -> None:
    keys = MemoryKeyStore()
    ann, bob = await keys.key_for("ann"), await keys.key_for("bob")
    sealed = seal_value(ann, {"nested": [1, "two"]})
    assert open_value(ann, sealed) == {"nested": [1, "two"]}
    with pytest.raises(ValueError):
        open_value(bob, sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    assert (await Shredder(keys).open({"content": tampered}))[ERASED] is True


def test_declaring_personal_fields_checks_them() -> None:
    with pytest.raises(ValueError, match="in no event type's schema"):
        CHAT_ROOM.__class__(
            **{**_fields(CHAT_ROOM), "personal": personal("contnet", subject="sender_id")}
        )
    with pytest.raises(ValueError, match="cannot itself be personal"):
        personal("sender_id", subject="sender_id")
    with pytest.raises(ValueError, match="at least one field"):
        personal(subject="sender_id")


def _fields(domain: Any) -> dict[str, Any]:
    return {name: getattr(domain, name) for name in domain.__slots__ if not name.startswith("_")}


def _now() -> Any:
    from topics.envelope import utc_now

    return utc_now()


async def test_the_runtime_builds_the_shredder_from_the_settings() -> None:
    memory = memory_adapters()
    settings = SETTINGS.with_defaults(personal_data_encryption=False, key_cache_ttl_s=5)
    runtime = await Runtime.start(
        settings, roles=(), domains=Domains([CHAT_ROOM]), adapters=memory.adapters()
    )
    try:
        assert runtime.shredder.enabled is False
    finally:
        await runtime.stop()


async def test_a_sync_domain_stores_the_holder_sealed_and_its_rules_still_decide() -> None:
    pipe = await pipeline(Domains([ACCOUNT]))
    opened = await pipe.ask("account:acc-1", "AccountOpened", {"owner": f"Ann {MARKER}"})
    assert opened.status == 201, opened.body
    [stored] = await pipe.store.select(("account", "acc-1"))
    assert stored.data["owner"].startswith(SEALED_PREFIX) and MARKER not in stored.data["owner"]
    again = await pipe.ask("account:acc-1", "AccountOpened", {"owner": "Someone"})
    assert again.status == 409  # the state's rule decides on a sealed owner as before
    assert MARKER not in repr(again.body)
    assert (await pipe.ask("account:acc-1", "MoneyDeposited", {"amount": 5})).status == 201
    await pipe.shredder.erase("acc-1", by="dpo", at=_now())
    state = await pipe.shredder.open((await pipe.loader.latest(ACCOUNT, "acc-1")).state)
    assert state["owner"] is None and state[ERASED] is True and state["balance"] == 5
    assert (await pipe.ask("account:acc-1", "MoneyWithdrawn", {"amount": 2})).status == 201


def test_sealing_keeps_every_field_of_the_request_but_its_data() -> None:
    from dataclasses import fields

    from workers.roles.command.requests import CommandRequest

    # _sealed rebuilds the request field by field (for speed): a new field must be added there.
    assert [f.name for f in fields(CommandRequest)] == [
        "aggregate_type", "aggregate_id", "type", "data", "client_id", "command_id",
        "correlation_id", "causation_id", "actor", "expected_version",
    ]  # fmt: skip
