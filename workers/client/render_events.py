"""Typed event data per domain as Python source, from the domains' declarations: one frozen
msgspec Struct per event type (``workers.client.typed.EventData``), each field with the bounds
its declared kind checks, so what the model accepts is what the fleet's ``check`` accepts.

``python -m workers.client.codegen events module:function --out DIR`` writes ``DIR/<domain>.py``
for each domain. A declared personal field may also be None: what a read gives once its subject
is erased. A kind this cannot describe is ``Any`` (the fleet still checks it).
"""

from __future__ import annotations

import json
import keyword
import math
import textwrap
from pathlib import Path

from snapshot_rules.domain import NEW, Domain
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text

__all__ = ["class_docstring", "render_domain", "write_modules"]

INT64 = (-(2**63), 2**63 - 1)
"""What the store keeps of an integer: the edge of every integer field."""
_TAKEN = {
    "Annotated",
    "Any",
    "ClassVar",
    "Data",
    "Event",
    "EventData",
    "Literal",
    "MODELS",
    "Meta",
    "TypeAlias",
    "data",
    "data_of",
    "msgspec",
}
_RESERVED_FIELDS = {"aggregate_type", "event_type"}
_STRUCT = "frozen=True, kw_only=True"


def module_name(domain: Domain) -> str:
    """The module a domain's models are written to (its name, ``_`` after a keyword)."""
    return domain.name + "_" if keyword.iskeyword(domain.name) else domain.name


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


class _Module:
    """The source of one domain's module, built class by class."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.classes: list[str] = []
        self.names: set[str] = set(_TAKEN)
        self.typing: set[str] = {"ClassVar", "TypeAlias"}
        self.meta = False
        self.msgspec = False

    def name(self, wanted: str) -> str:
        """A class name no other class or import of the module has."""
        found = wanted + "_" if keyword.iskeyword(wanted) else wanted
        while found in self.names:
            found += "_"
        self.names.add(found)
        return found

    def event(self, event_type: str) -> str:
        spec = self.domain.spec(event_type)
        name = self.name(event_type)
        personal = self.domain.personal.fields if self.domain.personal is not None else set()
        after = ", ".join("a new aggregate" if t == NEW else t for t in sorted(spec.after))
        after = after if spec.checked else "any event"
        about = (
            f"``{self.domain.name}.{event_type}``, schema version {spec.version}; "
            f"it may follow: {after}."
        )
        lines = [
            f"class {name}(EventData, {_STRUCT}{_closed(spec.schema)}):",
            class_docstring(about),
            "",
            f'    aggregate_type: ClassVar[str] = "{self.domain.name}"',
            f'    event_type: ClassVar[str] = "{event_type}"',
            *self.fields(spec.schema, name, frozenset(personal)),
        ]
        self.classes.append("\n".join(lines))
        return name

    def fields(self, obj: Obj, owner: str, personal: frozenset[str]) -> list[str]:
        lines = []
        for field, kind in obj.fields.items():
            optional = isinstance(kind, Optional)
            annotation = self.annotation(
                kind.kind if isinstance(kind, Optional) else kind, owner + _pascal(field)
            )
            erased = field in personal
            if erased:
                annotation += " | None"
            attribute = field
            if not field.isidentifier() or keyword.iskeyword(field) or field in _RESERVED_FIELDS:
                attribute = "field_" + "".join(c if c.isalnum() else "_" for c in field)
            default = ""
            self.msgspec |= optional or attribute != field
            if optional:
                annotation += " | msgspec.UnsetType"
                default = " = msgspec.UNSET"
            if attribute != field:
                keep = "default=msgspec.UNSET, " if optional else ""
                default = f' = msgspec.field({keep}name="{field}")'
            if erased:
                lines.append("    # personal data: None once its subject is erased")
            lines.append(f"    {attribute}: {annotation}{default}")
        return lines

    def annotation(self, kind: Kind, name: str) -> str:
        """The type of a field of ``kind``; a nested object becomes a class named ``name``."""
        if isinstance(kind, Text):
            return self._annotated("str", f"min_length=1, max_length={kind.max_length}")
        if isinstance(kind, Choice):
            self.typing.add("Literal")
            return f"Literal[{', '.join(json.dumps(option) for option in kind.options)}]"
        if isinstance(kind, Number):
            return self._number(kind)
        if isinstance(kind, ListOf):
            item = self.annotation(kind.item, name)
            bounds = f"min_length={kind.min_items}, max_length={kind.max_items}"
            return self._annotated(f"list[{item}]", bounds)
        if isinstance(kind, Obj):
            return self._nested(kind, name)
        self.typing.add("Any")
        return "Any"

    def _number(self, kind: Number) -> str:
        """An integer field as ``int``; a number as ``int | float``, each bounded on its own
        (an int past a float bound must not pass by rounding to it, as 10**18 + 1 would)."""
        whole = self._annotated("int", _bounds(kind, whole=True))
        if kind.integer:
            return whole
        return f"{whole} | {self._annotated('float', _bounds(kind, whole=False))}"

    def _annotated(self, base: str, meta: str) -> str:
        if not meta:
            return base
        self.typing.add("Annotated")
        self.meta = True
        return f"Annotated[{base}, Meta({meta})]"

    def _nested(self, obj: Obj, wanted: str) -> str:
        name, self.msgspec = self.name(wanted), True
        lines = [
            f"class {name}(msgspec.Struct, {_STRUCT}{_closed(obj)}):",
            f'    """A nested object of ``{self.domain.name}`` event data."""',
        ]
        fields = self.fields(obj, name, frozenset())
        self.classes.append("\n".join([*lines, "", *fields] if fields else lines))
        return name


def _bounds(kind: Number, *, whole: bool) -> str:
    """``Meta``'s bounds for the ints (within int64, as the store) or the floats of ``kind``."""
    bounds, low, high = [], kind.minimum, kind.maximum
    if whole:
        low = INT64[0] if low is None else max(math.ceil(low), INT64[0])
        high = INT64[1] if high is None else min(math.floor(high), INT64[1])
    if kind.positive and (low is None or low <= 0):
        bounds.append("gt=0")
    elif low is not None:
        bounds.append(f"ge={low!r}")
    if high is not None:
        bounds.append(f"le={high!r}")
    return ", ".join(bounds)


def class_docstring(text: str, width: int = 92) -> str:
    """``text`` as a class's docstring, wrapped within ``width``, as ruff format keeps it."""
    lines = textwrap.wrap(text, width=width, break_on_hyphens=False)
    if len(lines) == 1:
        return f'    """{lines[0]}"""'
    return '    """' + "\n    ".join(lines) + '\n    """'


def _closed(obj: Obj) -> str:
    return ", forbid_unknown_fields=True" if obj.closed else ""


def render_domain(domain: Domain, source: str = "") -> str:
    """The module of ``domain``'s typed event data (``source``: the declarations it came from)."""
    module = _Module(domain)
    events = [module.event(event_type) for event_type in domain.events]
    header = [
        f'"""Typed event data of the domain ``{domain.name}``. Generated from its declaration: do',
        "not edit; generate it again when the domain changes:",
        "",
        f"    python -m workers.client.codegen events {source}".rstrip(),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"from typing import {', '.join(sorted(module.typing))}",
        "",
        *(["import msgspec"] if module.msgspec else []),
        *(["from msgspec import Meta"] if module.meta else []),
        "",
        "from workers.client import Event",
        "from workers.client.typed import EventData, data_of",
    ]
    footer = [
        _alias(events),
        f'"""The data of any event of ``{domain.name}``."""',
        "MODELS: dict[str, type[Data]] = {",
        *(f'    "{t}": {n},' for t, n in zip(domain.events, events, strict=True)),
        "}",
        "",
        "",
        "def data(event: Event) -> Data:",
        '    """``event.data`` as its type\'s model (``ValueError``: a type or data the models do',
        '    not know)."""',
        "    return data_of(event, MODELS)",
    ]
    parts = ["\n".join(header), *module.classes, "\n".join(footer)]
    return "\n\n\n".join(parts) + "\n"


def _alias(names: list[str]) -> str:
    """``Data``, the union of the event classes, as ruff format writes it."""
    line = f"Data: TypeAlias = {' | '.join(names)}"
    if len(line) <= 100:
        return line
    return "Data: TypeAlias = (\n    " + " | ".join(names) + "\n)"


def write_modules(spec: str, out: Path) -> list[Path]:
    """Write ``out/<domain>.py`` for each domain ``spec`` (``module:function``) declares."""
    from workers.runtime.loading import load_domains  # EVENTFLEET_DOMAINS's one reading

    domains = load_domains(spec)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for domain in domains:
        path = out / f"{module_name(domain)}.py"
        path.write_text(render_domain(domain, f"{spec} --out {out}"))
        written.append(path)
    return written
