"""Declaration-time checks of a domain: every mistake fails at start, in one sentence naming the
fix.

A typo in ``after=``, in a snapshot rule's ``on(...)`` or in a route's types would otherwise
show up only as requests refused at run time (or a rule that never fires); an empty ``after``
list would make its event type impossible to append. So ``Domain`` calls ``check_domain``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from snapshot_rules.upcasting import Upcast, check_upcasts

NEW = "none"
"""In ``after``: the event may open a new aggregate (no event marked before it)."""
ANY = "*"
"""``after=ANY``: the event type is not checked against the one before it (a type without a
transition rule passes): it may open an aggregate or follow any event. Only its data is checked."""


class Spec(Protocol):
    """What the checks read of an event type's declaration."""

    @property
    def after(self) -> frozenset[str]: ...

    @property
    def upcasts(self) -> tuple[Upcast, ...]: ...


def after_names(after: Iterable[str] | str) -> frozenset[str]:
    """``event(after=...)`` as a set; a bare string other than ANY is a mistake, named."""
    if isinstance(after, str):
        if after == ANY:
            return frozenset({ANY})
        raise ValueError(
            f"after={after!r} is a single string; write after=[{after!r}] (a list of the event "
            "types it may follow), or after=ANY to accept it after anything."
        )
    return frozenset(after)


def check_domain(
    name: str,
    events: Mapping[str, Spec],
    *,
    rule_types: Collection[str],
    routes: Iterable[tuple[str, Collection[str] | None]],
    derived_types: Collection[str],
) -> None:
    """Raise ValueError for the first declaration mistake of domain ``name``."""
    if not events:
        raise ValueError(f"domain {name!r} declares no event types; give it events={{...}}.")
    for event_type, spec in events.items():
        _check_after(name, event_type, spec.after, events)
        check_upcasts(f"{name}.{event_type}", spec.upcasts)
    for unknown in sorted(set(rule_types) - events.keys()):
        raise ValueError(
            f"{name}'s snapshot rule names {unknown!r}, which is not one of its event types"
            f"{_suggest(unknown, events)}; fix the name in on(...)."
        )
    known = events.keys() | set(derived_types)
    for topic, types in routes:
        for unknown in sorted(set(types or ()) - known):
            raise ValueError(
                f"{name}'s route to {topic!r} names {unknown!r}, which is not one of its event "
                f"types{_suggest(unknown, known)}; fix the name in Route(..., types=...)."
            )


def _check_after(
    domain: str, event_type: str, after: frozenset[str], events: Mapping[str, Spec]
) -> None:
    where = f"{domain}.{event_type}"
    if not after:
        raise ValueError(
            f"{where} has an empty after list, so it could never be appended. List the event "
            "types it may follow (NEW for the first event of an aggregate), or write "
            "after=ANY to accept it after anything."
        )
    if ANY in after and len(after) > 1:
        raise ValueError(
            f"{where}: ANY already accepts every predecessor; write after=ANY alone, or list "
            "the event types without ANY."
        )
    for unknown in sorted(after - events.keys() - {NEW, ANY}):
        raise ValueError(
            f"{where} may follow {unknown!r}, which is not an event type of {domain}"
            f"{_suggest(unknown, events)}; every name in after= must be one of its event "
            "types, NEW (a new aggregate) or ANY alone."
        )


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_suggest = did_you_mean
