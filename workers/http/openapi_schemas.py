"""JSON Schemas of the contract: a domain's declared event data, the envelope, every error code.

Pure functions over the declarations (``snapshot_rules``) and the error catalogue
(``ERROR_CODES``): what ``workers.http.openapi`` puts in the document's components and what
``GET /v1/types`` answers. A declared field's kind maps onto the JSON Schema that accepts
exactly what its ``check`` accepts; personal fields are marked ``x-personal: true``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from snapshot_rules.declaration import ANY, NEW
from snapshot_rules.domain import Domain, Mode
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text
from topics.envelope import AGGREGATE_ID_RE, AGGREGATE_TYPE_RE, EVENT_TYPE_RE
from topics.jsonvalue import JsonObject
from workers.roles.command.requests import ID_MAX
from workers.runtime.answers import ErrorCode

Schema = JsonObject

INT64 = (-(2**63), 2**63 - 1)
"""What the store keeps of an integer (BSON int64): the edge of every integer field."""


def pattern(regex: str) -> str:
    """A Python ``…\\Z`` pattern as ECMA-262 (JSON Schema): ``$``, which ends it there too."""
    return regex.removesuffix("\\Z") + "$"


ID_PATTERN = pattern(AGGREGATE_ID_RE.pattern)
TYPE_PATTERN = pattern(AGGREGATE_TYPE_RE.pattern)
EVENT_TYPE_PATTERN = pattern(EVENT_TYPE_RE.pattern)
PRINTABLE = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"
"""No control character or line separator (``topics.envelope.CONTROL_CHARACTERS``)."""
NULLABLE_ID: Schema = {
    "type": ["string", "null"],
    "minLength": 1,
    "maxLength": ID_MAX,
    "pattern": PRINTABLE,
}
"""An id of a command (``client_id``, ``command_id`` …): printable text, and null is as good as
leaving it out."""


def ref(name: str) -> Schema:
    """A reference to ``components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def kind_schema(kind: Kind) -> Schema:
    """The JSON Schema of one declared field kind (``{}`` for a kind it cannot describe)."""
    if isinstance(kind, Optional):
        return kind_schema(kind.kind)
    if isinstance(kind, Text):
        return {"type": "string", "minLength": 1, "maxLength": kind.max_length}
    if isinstance(kind, Choice):
        return {"type": "string", "enum": list(kind.options)}
    if isinstance(kind, Number):
        return _number(kind)
    if isinstance(kind, ListOf):
        return {
            "type": "array",
            "items": kind_schema(kind.item),
            "minItems": kind.min_items,
            "maxItems": kind.max_items,
        }
    if isinstance(kind, Obj):
        return object_schema(kind, frozenset())
    return {"description": f"checked by {type(kind).__name__} (not expressible here)"}


def _number(kind: Number) -> Schema:
    found: Schema = {"type": "integer" if kind.integer else "number"}
    low, high = kind.minimum, kind.maximum
    if kind.integer:
        low = INT64[0] if low is None else max(low, INT64[0])
        high = INT64[1] if high is None else min(high, INT64[1])
    if kind.positive and (low is None or low <= 0):
        found["exclusiveMinimum"] = 0
    elif low is not None:
        found["minimum"] = low
    if high is not None:
        found["maximum"] = high
    return found


def object_schema(obj: Obj, personal: frozenset[str]) -> Schema:
    """An ``Obj`` as a JSON object schema; fields named in ``personal`` carry ``x-personal``."""
    properties: dict[str, Schema] = {}
    for name, kind in obj.fields.items():
        properties[name] = kind_schema(kind)
        if name in personal:
            properties[name]["x-personal"] = True
    found: Schema = {"type": "object", "properties": properties}
    required = [name for name, kind in obj.fields.items() if not isinstance(kind, Optional)]
    if required:
        found["required"] = required
    found["additionalProperties"] = not obj.closed
    return found


def data_schema(domain: Domain, event_type: str) -> Schema:
    """The ``data`` of ``event_type`` as a client sends it (plaintext, current schema version)."""
    personal = domain.personal.fields if domain.personal is not None else frozenset()
    found = object_schema(domain.spec(event_type).schema, personal)
    found["title"] = f"{domain.name}.{event_type}"
    if domain.personal is not None and personal & found["properties"].keys():
        whose = domain.personal.subject or "the aggregate id"
        found["description"] = (
            f"Fields marked x-personal are personal data of the subject named by {whose}: "
            "sealed before they are stored, unreadable (null, with erased: true) once it is erased."
        )
    return found


def transitions(domain: Domain, event_type: str) -> Schema:
    """What ``event_type`` may follow: ``any``, or the types (``none``: a new aggregate)."""
    after = domain.spec(event_type).after
    if ANY in after:
        return {"checked": False, "after": "any"}
    return {"checked": True, "after": sorted(after), "opens_aggregate": NEW in after}


def type_listing(domain: Domain) -> Schema:
    """One aggregate type as ``GET /v1/types`` lists it: mode, event types, transitions, schemas."""
    events = {
        name: {
            "schema_version": spec.version,
            "allowed_after": transitions(domain, name),
            "data": data_schema(domain, name),
        }
        for name, spec in domain.events.items()
    }
    personal = domain.personal
    return {
        "aggregate_type": domain.name,
        "mode": domain.mode.value,
        "event_types": events,
        "personal": None
        if personal is None
        else {"fields": sorted(personal.fields), "subject": personal.subject},
        "queries": [query.path for query in domain.queries],
    }


# --- errors ----------------------------------------------------------------------------------

_EXTRAS: Mapping[str, Mapping[str, Schema]] = {
    "unauthenticated": {"reason": {"type": "string"}},
    "forbidden": {"reason": {"type": "string"}},
    "forbidden_at_store": {"reason": {"type": "string"}},
    "refused": {"reason": {"type": "string"}},
    "dead_lettered": {"reason": {"type": "string"}},
    "transition_rejected": {
        "current": {"type": ["string", "null"]},
        "allowed": {"type": "array", "items": {"type": "string"}},
    },
    "method_not_allowed": {"allowed_methods": {"type": "array", "items": {"type": "string"}}},
    "too_many_subscriptions": {"limit": {"type": "string"}, "retry_after_s": {"type": "number"}},
    "store_catching_up": {"retry_after_s": {"type": "number"}},
    "console_read_only": {"setting": {"type": "string"}},
    "not_yet_stored": {
        "stored_version": {"type": ["integer", "null"]},
        "wanted_version": {"type": ["integer", "null"]},
    },
    "history_compacted": {
        "whole_from": {"type": "integer", "minimum": 1},
        "after_version": {"type": "integer", "minimum": 0},
    },
    "outcome_unknown": {
        "event_id": {"type": ["string", "null"]},
        "event_ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "an append across aggregates: all of them or none",
        },
        "command_id": {"type": ["string", "null"]},
    },
    "async_domain": {
        "item": {"type": "integer", "minimum": 0},
        "aggregate_type": {"type": "string"},
        "aggregate_id": {"type": "string"},
    },
    "not_found": {
        "outcome": {"const": "none"},
        "event_id": {"type": ["string", "null"]},
        "command_id": {"type": ["string", "null"]},
    },
}
"""The fields some codes carry beside ``error`` and ``message`` (others may come: not closed)."""


def error_schema_name(code: str) -> str:
    return f"Error_{code}"


def error_schema(entry: ErrorCode) -> Schema:
    """The body of one error code: ``{"error": code, "message": sentence, ...details}``."""
    return {
        "type": "object",
        "title": entry.code,
        "description": f"{entry.cause}. Fix: {entry.fix}.",
        "required": ["error", "message"],
        "properties": {
            "error": {"const": entry.code},
            "message": {"type": "string", "minLength": 1},
            **_EXTRAS.get(entry.code, {}),
        },
        "x-status": entry.status,
    }


def error_union(codes: Iterable[str]) -> Schema:
    """One status's body: the error schemas of ``codes``, told apart by ``error``."""
    names = sorted(set(codes))
    refs = [{"$ref": f"#/components/schemas/{error_schema_name(code)}"} for code in names]
    if len(refs) == 1:
        return refs[0]
    mapping = {code: f"#/components/schemas/{error_schema_name(code)}" for code in names}
    return {"oneOf": refs, "discriminator": {"propertyName": "error", "mapping": mapping}}


# --- bodies ----------------------------------------------------------------------------------

ACTOR: Schema = {
    "type": "object",
    "required": ["principal", "roles"],
    "properties": {
        "principal": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
    },
}
ENVELOPE: Schema = {
    "type": "object",
    "description": "One stored event, as /events, the subscriptions and the topics carry it.",
    "required": [
        "id",
        "aggregate_type",
        "aggregate_id",
        "type",
        "version",
        "data",
        "metadata",
        "occurred_at",
    ],
    "properties": {
        "id": {"type": "string"},
        "aggregate_type": {"type": "string", "pattern": TYPE_PATTERN},
        "aggregate_id": {"type": "string", "pattern": ID_PATTERN},
        "type": {"type": "string", "pattern": EVENT_TYPE_PATTERN},
        "version": {"type": ["integer", "null"], "minimum": 1},
        "data": {"type": "object", "description": "the event type's data (components/schemas)"},
        "metadata": {
            "type": "object",
            "properties": {
                "client_id": {"type": ["string", "null"]},
                "command_id": {"type": ["string", "null"]},
                "correlation_id": {"type": ["string", "null"]},
                "causation_id": {"type": ["string", "null"]},
                "actor": {"$ref": "#/components/schemas/Actor"},
            },
        },
        "occurred_at": {"type": "string", "format": "date-time"},
        "after": {"type": ["string", "null"]},
        "schema_version": {"type": "integer", "minimum": 2},
    },
}


def command_schema(domain: Domain, event_type: str) -> Schema:
    """The body of ``POST /v1/{type}/{id}/events`` for one event type."""
    needs_data = any(
        not isinstance(kind, Optional) for kind in domain.spec(event_type).schema.fields.values()
    )
    return {
        "type": "object",
        "title": f"{domain.name}.{event_type} command",
        "required": ["type", "data"] if needs_data else ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": event_type},
            "data": {"$ref": f"#/components/schemas/{data_schema_name(domain, event_type)}"},
            "command_id": {
                **NULLABLE_ID,
                "description": "makes retries safe: the same id answers the first outcome",
            },
            "expected_version": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": INT64[1],
                "description": "append only if the aggregate is at this version (0: it must not "
                "exist yet); else 409 wrong_expected_version naming the current one. Also as "
                'If-Match: "7", the ETag the reads answer',
            },
            "client_id": NULLABLE_ID,
            "correlation_id": NULLABLE_ID,
            "causation_id": NULLABLE_ID,
        },
    }


def data_schema_name(domain: Domain, event_type: str) -> str:
    return f"{domain.name}.{event_type}"


def item_schema(domain: Domain, event_type: str) -> Schema:
    """One item of ``POST /v1/appends``: ``event_type`` for an aggregate of ``domain``."""
    command = command_schema(domain, event_type)
    return {
        "type": "object",
        "title": f"{domain.name}.{event_type} item",
        "required": ["aggregate_type", "aggregate_id", *command["required"]],
        "additionalProperties": False,
        "properties": {
            "aggregate_type": {"const": domain.name},
            "aggregate_id": {"type": "string", "pattern": ID_PATTERN},
            "type": {"const": event_type},
            "data": command["properties"]["data"],
            "expected_version": command["properties"]["expected_version"],
        },
    }


def multi_append_schema(domains: Iterable[Domain]) -> Schema:
    """The body of ``POST /v1/appends``: an item per aggregate, of the sync domains (an item
    of another domain is refused, and so is described by no item schema here)."""
    items = [
        ref(f"{data_schema_name(d, t)}.item")
        for d in domains
        if d.mode is Mode.SYNC
        for t in d.events
    ]
    item: Schema = {"oneOf": items} if len(items) > 1 else items[0] if items else {"type": "object"}
    return {
        "type": "object",
        "title": "an append across aggregates",
        "required": ["appends"],
        "additionalProperties": False,
        "properties": {
            "appends": {
                "type": "array",
                "minItems": 1,
                "items": item,
                "description": "one item per aggregate, at most EVENTFLEET_MULTI_APPEND_MAX_ITEMS "
                "(100 by default): all stored in one transaction, or none",
            },
            "command_id": {
                **NULLABLE_ID,
                "description": "names the whole request: each event's id derives from it and "
                "its aggregate, so a retry is answered the stored events",
            },
            "client_id": NULLABLE_ID,
            "correlation_id": NULLABLE_ID,
            "causation_id": NULLABLE_ID,
        },
    }
