"""Numbers are numbers (issue 19): in every example domain, every field a schema declares a
``Number`` (at the current schema version and in every upcaster's older one) refuses ``true``
and ``false``, through the check the command side and the store both make."""

from __future__ import annotations

import math
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import pytest

from snapshot_rules.domain import Domain
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text
from topics.envelope import new_event
from topics.errors import InvalidEventData
from workers.examples.domains import all_domains
from workers.examples.storage.fleet import domains_with_storage

Path = tuple[str | int, ...]


def sample(kind: Kind) -> Any:
    """One value ``kind`` accepts, every optional field and at least one list item present."""
    if isinstance(kind, Optional):
        return sample(kind.kind)
    if isinstance(kind, Obj):
        return {name: sample(k) for name, k in kind.fields.items()}
    if isinstance(kind, ListOf):
        return [sample(kind.item) for _ in range(max(1, kind.min_items))]
    if isinstance(kind, Text):
        return "x"
    if isinstance(kind, Choice):
        return kind.options[0]
    if isinstance(kind, Number):
        low = kind.minimum if kind.minimum is not None else 0
        value = max(math.ceil(low), 1) if kind.integer or kind.positive else low
        return value if kind.maximum is None else min(value, kind.maximum)
    raise TypeError(f"no sample for {kind!r}")


def numbers(kind: Kind, at: Path = ()) -> Iterator[Path]:
    """The path of every Number field (list items at index 0)."""
    if isinstance(kind, Optional):
        yield from numbers(kind.kind, at)
    elif isinstance(kind, Obj):
        for name, k in kind.fields.items():
            yield from numbers(k, (*at, name))
    elif isinstance(kind, ListOf):
        yield from numbers(kind.item, (*at, 0))
    elif isinstance(kind, Number):
        yield at


def _domains() -> list[Domain]:
    seen: dict[str, Domain] = {}
    for domains in (all_domains(), domains_with_storage()):
        for domain in domains:
            seen.setdefault(domain.name, domain)
    return list(seen.values())


CASES = [
    (domain, kind, version, path)
    for domain in _domains()
    for kind, spec in domain.events.items()
    for version, schema in [
        *enumerate((u.schema for u in spec.upcasts), start=1),
        (spec.version, spec.schema),
    ]
    for path in numbers(schema)
]


def test_the_sweep_reaches_current_and_upcast_schemas() -> None:
    names = {(d.name, kind, version) for d, kind, version, _ in CASES}
    assert ("order", "OrderPaid", 1) in names and ("cart", "ItemAdded", 1) in names
    assert ("cart", "ItemAdded", 2) in names and len(CASES) >= 10, len(CASES)


@pytest.mark.parametrize(("domain", "kind", "version", "path"), CASES,
                         ids=lambda p: getattr(p, "name", str(p)))  # fmt: skip
@pytest.mark.parametrize("flag", [True, False])
def test_a_bool_where_a_number_is_declared_is_refused(
    domain: Domain, kind: str, version: int, path: Path, flag: bool
) -> None:
    spec = domain.spec(kind)
    schema = spec.schema if version == spec.version else spec.upcasts[version - 1].schema
    data = sample(schema)
    good = new_event(domain.name, "a-1", kind, data, schema_version=version)
    domain.check_as_written(good)  # the sample is valid: only the bool below is wrong
    bad = deepcopy(data)
    target = bad
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = flag
    with pytest.raises(InvalidEventData, match="must be"):
        domain.check_as_written(new_event(domain.name, "a-1", kind, bad, schema_version=version))
