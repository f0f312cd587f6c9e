"""after=ANY through the whole write path: the marker, the store's judge and the auditor agree."""

from __future__ import annotations

from snapshot_rules.domain import ANY, NEW, Domain, Domains, Mode, event
from snapshot_rules.replay import State
from snapshot_rules.schema import Text, fields
from topics.envelope import Event

from .pipeline import pipeline


def count(state: State | None, e: Event) -> State:
    seen = dict((state or {}).get("seen", {}))
    seen[e.type] = seen.get(e.type, 0) + 1
    return {"seen": seen}


NOTEBOOK = Domain(
    name="notebook",
    events={
        "NoteWritten": event(fields(text=Text(max_length=200))),  # no after=: unchecked
        "Archived": event(after=["NoteWritten"]),
        "Pinned": event(after=ANY),
    },
    reducer=count,
)
SHELF = Domain(
    name="shelf",
    mode=Mode.SYNC,  # no validator: schema and declared transitions only
    events={"Built": event(after=[NEW]), "BookAdded": event(fields(title=Text()))},
    reducer=count,
)


async def test_an_event_declared_without_after_is_accepted_stored_and_audited() -> None:
    p = await pipeline(Domains([NOTEBOOK, SHELF]))
    first = await p.ask("notebook:n-1", "NoteWritten", {"text": "hello"})
    assert first.status == 202, first.body  # a new aggregate, no predecessor check
    assert (await p.ask("notebook:n-1", "Pinned")).status == 202
    assert (await p.ask("notebook:n-1", "NoteWritten", {"text": "again"})).status == 202
    archived = await p.ask("notebook:n-1", "Archived")
    assert archived.status == 202
    assert (await p.ask("notebook:n-1", "Pinned")).status == 202  # ANY: even after Archived
    await p.flush()
    history = [e.type for e in await p.store.select(("notebook", "n-1"))]
    assert history == ["NoteWritten", "Pinned", "NoteWritten", "Archived", "Pinned"]
    report = await p.audit()
    assert report.ok, report.findings
    assert p.dead_letters() == []


async def test_a_checked_event_after_an_unchecked_one_is_still_refused_where_it_does_not_fit() -> (
    None
):
    p = await pipeline(Domains([NOTEBOOK, SHELF]))
    assert (await p.ask("notebook:n-2", "Pinned")).status == 202
    await p.flush()  # a refusal is answered once the store holds what it follows
    refused = await p.ask("notebook:n-2", "Archived")
    assert refused.status == 409, refused.body
    assert refused.body["allowed"] == ["NoteWritten"] and refused.body["current"] == "Pinned"
    bad = await p.ask("notebook:n-2", "NoteWritten", {"text": ""})
    assert (bad.status, bad.body["error"]) == (422, "invalid_data")  # data is still checked


async def test_a_sync_domain_without_a_validator_appends_and_checks_its_transitions() -> None:
    p = await pipeline(Domains([NOTEBOOK, SHELF]))
    built = await p.ask("shelf:s-1", "Built")
    added = await p.ask("shelf:s-1", "BookAdded", {"title": "Dune"})
    assert (built.status, added.status) == (201, 201), (built.body, added.body)
    again = await p.ask("shelf:s-1", "Built")
    assert again.status == 409 and "Built may not follow BookAdded" in again.body["message"]
    assert [e.version for e in await p.store.select(("shelf", "s-1"))] == [1, 2]
    assert (await p.audit()).ok
