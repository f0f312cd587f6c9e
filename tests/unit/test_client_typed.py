"""Typed event data generated from the domains' declarations (``python -m workers.client.codegen
events``): a model per event type of every example domain, accepting exactly what the fleet's
own check accepts, reading events back as their models and refusing before sending what the
fleet would refuse."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot_rules.domain import Domain, event
from snapshot_rules.personal import personal
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text, fields
from tests.strategies import data_for
from topics.errors import InvalidEventData
from workers.client import ArgumentError, AsyncClient, Backoff, Event
from workers.client.codegen import main
from workers.client.render_events import module_name, render_domain
from workers.examples.domains import all_domains

DOMAINS = list(all_domains())
SPEC = "workers.examples.domains:all_domains"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """Every example domain's module, written by the command and imported from where it wrote."""
    out = tmp_path_factory.mktemp("models") / "fleet_models"
    assert main(["events", SPEC, "--out", str(out)]) == 0
    sys.path.insert(0, str(out.parent))
    try:
        yield {d.name: importlib.import_module(f"fleet_models.{module_name(d)}") for d in DOMAINS}
    finally:
        sys.path.remove(str(out.parent))
        for name in [m for m in sys.modules if m.startswith("fleet_models")]:
            del sys.modules[name]


def test_each_domain_gets_a_model_per_event_type_that_passes_the_linter(
    generated: dict[str, ModuleType], tmp_path: Path
) -> None:
    for domain in DOMAINS:
        module = generated[domain.name]
        assert list(module.MODELS) == list(domain.events)
        for event_type, model in module.MODELS.items():
            assert (model.aggregate_type, model.event_type) == (domain.name, event_type)
    out = Path(generated["order"].__file__ or "").parent
    lint = subprocess.run([Path(sys.executable).with_name("ruff"), "check", "--isolated",
                           "--select", "E,F,W,I,UP,B", "--ignore", "E501", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout


def _wrong(kind: Kind) -> st.SearchStrategy[Any]:
    """Values at and past the edges of ``kind``, and of other types."""
    other = st.sampled_from([None, True, "1", 1, 1.5, [], {}])
    if isinstance(kind, Text):
        return other | st.sampled_from(["", "x" * kind.max_length, "x" * (kind.max_length + 1)])
    if isinstance(kind, Number):
        edges = [v for v in (kind.minimum, kind.maximum) if v is not None]
        near = [e + d for e in edges for d in (-1, -0.5, 0, 0.5, 1)] + [0, -1, 0.25, 2**62]
        return other | st.sampled_from(near)
    if isinstance(kind, Choice):
        return other | st.sampled_from([*kind.options, "not-an-option"])
    if isinstance(kind, ListOf):
        sizes = [
            n for n in (kind.min_items - 1, kind.min_items, kind.max_items + 1) if 0 <= n <= 20
        ]
        item = _near(kind.item)
        return other | st.sampled_from(sizes).flatmap(lambda n: st.lists(item, min_size=n,
                                                                           max_size=n))  # fmt: skip
    if isinstance(kind, Obj):
        return other | _object(kind, frozenset())
    return other


def _near(kind: Kind) -> st.SearchStrategy[Any]:
    return data_for(kind) | _wrong(kind)


@st.composite
def _object(draw: st.DrawFn, obj: Obj, personal_fields: frozenset[str]) -> dict[str, Any]:
    """An object whose fields are each valid, wrong or left out, sometimes with one more."""
    found: dict[str, Any] = {}
    for name, kind in obj.fields.items():
        inner = kind.kind if isinstance(kind, Optional) else kind
        value = draw(st.sampled_from(["good", "near", "absent"]))
        if value == "good":
            found[name] = draw(data_for(inner))
        elif value == "near":
            wrong = draw(_near(inner))
            if wrong is not None or name not in personal_fields:  # None: an erased read
                found[name] = wrong
    if draw(st.booleans()):
        found["zz_extra"] = 1
    return found


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_model_accepts_exactly_what_the_fleet_checks(
    generated: dict[str, ModuleType], data: st.DataObject
) -> None:
    domain = data.draw(st.sampled_from(DOMAINS))
    event_type = data.draw(st.sampled_from(list(domain.events)))
    spec = domain.spec(event_type)
    personal_fields = domain.personal.fields if domain.personal is not None else frozenset()
    value = data.draw(_object(spec.schema, personal_fields))
    try:
        domain.check_data(event_type, value)
        fleet = True
    except InvalidEventData:
        fleet = False
    try:
        msgspec.convert(value, generated[domain.name].MODELS[event_type])
        model = True
    except msgspec.ValidationError:
        model = False
    assert model == fleet, (domain.name, event_type, value)


def test_an_event_reads_back_as_its_model_and_an_unknown_one_says_why(
    generated: dict[str, ModuleType],
) -> None:
    order = generated["order"]
    placed = _event("OrderPlaced", {"items": [{"sku": "tea", "qty": 2, "price": 3}]})
    read = order.data(placed)
    assert isinstance(read, order.OrderPlaced) and read.items[0].sku == "tea"
    assert read.items[0].price == 3 and isinstance(read.items[0].price, int)  # a JSON number
    with pytest.raises(ValueError, match="'OrderLost', which these models do not know"):
        order.data(_event("OrderLost", {}))
    with pytest.raises(ValueError, match="schema version 1"):
        order.data(_event("OrderPaid", {"amount": "a lot"}))
    erased = _event("AccountOpened", {"owner": None}, "account")
    assert generated["account"].data(erased).owner is None  # an erased subject's read


async def test_a_model_outside_its_bounds_is_refused_before_anything_is_sent(
    generated: dict[str, ModuleType],
) -> None:
    order = generated["order"]
    client = AsyncClient("http://127.0.0.1:9", retry=Backoff(attempts=1))  # nothing listens
    try:
        with pytest.raises(
            ArgumentError, match=r"order.OrderPaid: Expected `int` >= 1 - at `\$.amount`"
        ):
            await client.append("order", "o-1", order.OrderPaid(amount=0))
        with pytest.raises(ArgumentError, match=r"length >= 1 - at `\$.items`"):
            await client.append("order", "o-1", order.OrderPlaced(items=[]))
        with pytest.raises(ArgumentError, match=r"<= 9223372036854775807"):
            await client.append("account", "a-1",
                                generated["account"].MoneyDeposited(amount=2**64))  # fmt: skip
    finally:
        await client.close()


def test_names_python_cannot_use_are_kept_on_the_wire(tmp_path: Path) -> None:
    odd = Domain(
        name="class",
        events={
            "Event": event(
                fields(**{"from": Text(), "event_type": optional_text(), "a-b": Text()})
            ),
            "Data": event(
                fields(
                    thing=Obj({"x": Number(integer=True)}, closed=True),
                    mood=Choice(('say "hi"', "no")),
                    any=_Unknown(),
                )
            ),
        },
        reducer=lambda state, _: state or {},
        personal=personal("from"),
    )
    (tmp_path / "odd_models").mkdir()
    (tmp_path / "odd_models" / f"{module_name(odd)}.py").write_text(render_domain(odd))
    sys.path.insert(0, str(tmp_path))
    try:
        models = importlib.import_module(f"odd_models.{module_name(odd)}").MODELS
    finally:
        sys.path.remove(str(tmp_path))
    made = msgspec.convert({"from": "x", "a-b": "y", "event_type": "z"}, models["Event"])
    assert (made.field_from, made.field_a_b, made.field_event_type) == ("x", "y", "z")
    assert models["Event"].event_type == "Event" and models["Event"].__name__ == "Event_"
    assert msgspec.to_builtins(msgspec.convert({"from": "x", "a-b": "y"}, models["Event"])) == {
        "from": "x", "a-b": "y"}  # fmt: skip
    data = msgspec.convert({"thing": {"x": 1}, "mood": 'say "hi"', "any": [1]}, models["Data"])
    assert data.thing.x == 1 and data.any == [1]
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"thing": {"x": 1, "y": 2}, "mood": "no", "any": 1}, models["Data"])
    assert module_name(odd) == "class_"


class _Unknown(Kind):
    def check(self, value: object, path: str) -> str | None:
        return None


def optional_text() -> Optional:
    return Optional(Text())


def _event(event_type: str, data: dict[str, Any], aggregate_type: str = "order") -> Event:
    return Event(id="e-1", aggregate_type=aggregate_type, aggregate_id="x-1", type=event_type,
                 version=1, data=data, metadata={}, occurred_at="2026-01-01T00:00:00Z")  # fmt: skip
