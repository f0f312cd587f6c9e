"""The published contract: an OpenAPI 3.1 document generated from the domains and the routes.

``document(domains, routes, auth=...)`` is pure: the enabled domains, the route patterns the
process registered (``None``: every route a ``worker --role all`` serves) and the auth mode in,
a dict out. Nothing in it is copied by hand: each event type's ``data`` schema comes from its
declaration (``workers.http.openapi_schemas``), each error response from ``ERROR_CODES``
(a code added there is in the document at once: see ``UNPLACED``), each operation from its
route's declaration (``workers.http.declared``: its query parameters are its query Struct's
fields, read by the dispatcher too), listed only if its route is registered. Served
at ``GET /openapi.json`` (``workers.http.contract``),
printed by ``eventfleet openapi`` and rendered in the console (``/console/api``).

Routes that name an aggregate type (``/v1/{aggregate_type}/{aggregate_id}/events`` and its
siblings) are documented once per enabled type (``/v1/order/{aggregate_id}/events``), each with
its own event types' bodies; ``x-route`` names the registered pattern.

Layout: ``# fmt: skip`` here keeps the document's schemas, read as the JSON they become (the
formatter would spread each over a dozen lines).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import msgspec

from snapshot_rules.domain import Domain, Domains, Mode
from snapshot_rules.personal import SUBJECT_MAX
from snapshot_rules.process import NAME_RE
from topics.jsonvalue import JsonObject
from workers.http.declared import (
    AUTH,
    GONE,
    NOT_HTTP,
    OPERATIONS,
    PER_TYPE,
    READ,
    READ_AFTER,
    UNPLACED,
)
from workers.http.edge.routes import Declared, Param, Success
from workers.http.openapi_schemas import (
    ACTOR,
    ENVELOPE,
    ID_PATTERN,
    PRINTABLE,
    TYPE_PATTERN,
    Schema,
    command_schema,
    data_schema,
    data_schema_name,
    error_schema,
    error_schema_name,
    error_union,
    item_schema,
    multi_append_schema,
    pattern,
    ref,
)
from workers.http.ryw.reads import ReadAfterQuery
from workers.roles.deadletter import MAX_OPERATOR
from workers.runtime.answers import ERROR_CODES

PROCESS_PATTERN = pattern(NAME_RE.pattern)
PROCESS_ROUTES = "/v1/processes"

__all__ = ["NOT_HTTP", "OPERATIONS", "UNPLACED", "document"]

OPENAPI_VERSION = "3.1.0"


def document(
    domains: Domains,
    routes: Collection[str] | None = None,
    *,
    auth: str,
    version: str = "0",
    processes: bool = True,
) -> JsonObject:
    """The OpenAPI 3.1 document of a process serving ``routes`` (aiohttp patterns) with
    ``domains``, under auth mode ``auth`` (``jwt``, ``proxy`` or ``none``); without ``routes``,
    every declared one (the process managers' only with ``processes``: a fleet serves them
    where EVENTFLEET_PROCESSES names some)."""
    served = _served(domains, routes)
    if not processes:
        served = {route for route in served if not route.startswith(PROCESS_ROUTES)}
    paths: dict[str, JsonObject] = {}
    for op in OPERATIONS:
        if op.template not in served:
            continue
        if op.template.startswith(PER_TYPE):
            for domain in domains:
                _add(paths, op, domain, auth)
        elif not op.template.startswith("/v1/rooms/") or "chat_room" in domains:
            _add(paths, op, None, auth)
    for domain in domains:
        for query in domain.queries:
            if query.path in served:
                paths.setdefault(query.path, {})["get"] = _query_operation(domain, query.path, auth)
    found: JsonObject = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "eventfleet",
            "version": version,
            "description": "Generated from the enabled domains, the registered routes and the "
            "error catalogue (ERROR_CODES). Every error body is {error, message, …details}.",
        },
        "paths": dict(sorted(paths.items())),
        "components": _components(domains, auth),
        "x-error-codes": [
            {"code": e.code, "status": e.status, "cause": e.cause, "fix": e.fix}
            for e in ERROR_CODES
        ],
    }
    if auth != "none":
        found["security"] = [{_scheme_name(auth): []}]
    return found


def _served(domains: Domains, routes: Collection[str] | None) -> set[str]:
    if routes is not None:
        return set(routes)
    return {op.template for op in OPERATIONS} | {q.path for d in domains for q in d.queries}


def _add(paths: dict[str, JsonObject], op: Declared, domain: Domain | None, auth: str) -> None:
    doc = op.doc
    path = op.template if domain is None else op.template.replace(PER_TYPE, f"/v1/{domain.name}/")
    if domain is not None and op.name == "append" and domain.mode is Mode.STORAGE:
        ok: tuple[Success, ...] = ()
        errors: tuple[str, ...] = ("read_only", "bad_request", "route_not_found", "internal",
                                   *AUTH)  # fmt: skip
    elif domain is not None and op.name == "append":
        status = 201 if domain.mode is Mode.SYNC else 202
        ok = tuple(s for s in doc.ok if s.status == status)
        errors = (*doc.errors, *(("conflict",) if domain.mode is Mode.SYNC else ()))
    else:
        ok, errors = doc.ok, doc.errors
    errors = (*errors, "bad_request")  # any route: a query parameter given twice
    if op.open:
        errors = tuple(c for c in errors if c not in AUTH)
    elif auth == "none":
        errors = tuple(c for c in errors if c != "unauthenticated")
    suffix = "" if domain is None else f"_{domain.name}"
    found: JsonObject = {
        "operationId": op.name + suffix,
        "summary": doc.summary,
        "x-route": op.template,
        "tags": [domain.name if domain is not None else doc.tags[0]],
        "parameters": [
            *_path_params(path),
            *query_params(op.query),
            *(_param(p) for p in doc.headers),
        ],
        "responses": _responses(ok, errors if op.open else (*errors, *UNPLACED)),
    }
    if doc.description:
        found["description"] = doc.description
    if op.open:
        found["security"] = []
    if doc.command and domain is not None:
        found["requestBody"] = _command_body(domain)
    elif doc.body_schema is not None:
        found["requestBody"] = {
            "required": doc.body_required,
            "content": {"application/json": {"schema": doc.body_schema}},
        }
    if domain is not None and op.name == "append":
        for success in ok:
            found["responses"][str(success.status)]["links"] = _links(domain)
    paths.setdefault(path, {})[op.method.lower()] = found


def query_params(query: type[msgspec.Struct] | None) -> list[Schema]:
    """The query parameters of a route, from its declared Struct (the dispatcher's own)."""
    if query is None:
        return []
    schema = msgspec.json.schema(query)
    name = schema["$ref"].rsplit("/", 1)[-1]
    properties: dict[str, Schema] = schema["$defs"][name].get("properties", {})
    found = []
    for field, prop in properties.items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("default", None)
        if "anyOf" in prop:  # Optional: null is never sent, it is left out
            kinds = [k for k in prop["anyOf"] if k.get("type") != "null"]
            prop = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
            description = description or prop.pop("description", None)
        param: Schema = {"name": field, "in": "query", "required": False, "schema": prop}
        if prop.get("type") == "boolean":  # a flag given bare (?verbose) is on
            param["allowEmptyValue"] = True
        if description:
            param["description"] = description
        found.append(param)
    return found


def _links(domain: Domain) -> JsonObject:
    """Stateful links: an append's answer leads to the aggregate's state, events and outcome."""
    same = {"aggregate_id": "$request.path.aggregate_id"}
    return {
        "state": {"operationId": f"state_{domain.name}", "parameters": same},
        "events": {"operationId": f"events_{domain.name}", "parameters": same},
        "outcome": {
            "operationId": f"outcome_{domain.name}",
            "parameters": {**same, "event_id": "$response.body#/event_id"},
        },
    }


def _path_params(path: str) -> list[Schema]:
    found = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            kind = {"aggregate_type": TYPE_PATTERN, "process": PROCESS_PATTERN}
            schema: Schema = {"type": "string", "pattern": kind.get(name, ID_PATTERN)}
            if name == "subject":  # what can be sealed can be erased (subject_problem)
                schema = {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": SUBJECT_MAX,
                    "pattern": PRINTABLE,
                }
            found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def _param(param: Param) -> Schema:
    found: Schema = {"name": param.name, "in": param.where, "required": False,
                     "schema": param.schema}  # fmt: skip
    if param.description:
        found["description"] = param.description
    return found


def _responses(ok: Iterable[Success], errors: Iterable[str]) -> JsonObject:
    found: JsonObject = {}
    for success in ok:
        response: JsonObject = {
            "description": success.description,
            "content": {success.media: {"schema": success.schema}},
        }
        if success.link:
            link = {"schema": {"type": "string"}, "description": 'the next page, rel="next"'}
            response["headers"] = {"Link": link}
        found[str(success.status)] = response
    by_status: dict[int, list[str]] = {}
    statuses = {e.code: e.status for e in ERROR_CODES}
    for code in dict.fromkeys(errors):
        by_status.setdefault(statuses[code], []).append(code)
    for status, codes in sorted(by_status.items()):
        found[str(status)] = {
            "description": ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": error_union(codes)}},
        }
    # The server answers a request line it cannot parse itself, in plain text, before any
    # route sees the request.
    found.setdefault("400", {"description": "", "content": {}})
    found["400"]["description"] = ", ".join(
        filter(None, (found["400"]["description"], "unparsable request (plain text)"))
    )
    found["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    return dict(sorted(found.items()))


def _command_body(domain: Domain) -> JsonObject:
    commands = [ref(f"{data_schema_name(domain, t)}.command") for t in domain.events]
    mapping = {t: f"#/components/schemas/{data_schema_name(domain, t)}.command"
               for t in domain.events}  # fmt: skip
    schema: Schema = (
        commands[0] if len(commands) == 1
        else {"oneOf": commands, "discriminator": {"propertyName": "type", "mapping": mapping}}
    )  # fmt: skip
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query_operation(domain: Domain, path: str, auth: str) -> JsonObject:
    errors = (*READ, *READ_AFTER, *GONE, "unknown_aggregate_type", *AUTH, *UNPLACED)
    if auth == "none":
        errors = tuple(c for c in errors if c != "unauthenticated")
    return {
        "operationId": "query_" + "_".join(p.strip("{}") for p in path.split("/")[2:] if p),
        "summary": f"A read route declared by the {domain.name} domain",
        "x-route": path,
        "tags": [domain.name],
        "parameters": [*_path_params(path), *query_params(ReadAfterQuery)],
        "responses": _responses((Success(200, {"type": "object"}, link=True),), errors),
    }


def _scheme_name(auth: str) -> str:
    return "proxy" if auth == "proxy" else "bearer"


def _security_schemes(auth: str) -> JsonObject:
    if auth == "proxy":
        return {"proxy": {
            "type": "apiKey", "in": "header", "name": "X-Forwarded-User",
            "description": "set by the authenticating proxy (EVENTFLEET_AUTH_TRUSTED_PROXIES), "
            "with X-Forwarded-Groups for roles; from any other address it is refused",
        }}  # fmt: skip
    if auth == "none":
        return {}
    return {"bearer": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "a token of EVENTFLEET_AUTH_ISSUER for EVENTFLEET_AUTH_AUDIENCE; `sub` "
        "is the principal, the roles claim its roles",
    }}  # fmt: skip


def _components(domains: Domains, auth: str) -> JsonObject:
    schemas: dict[str, Schema] = {
        "Envelope": ENVELOPE,
        "Actor": ACTOR,
        **_bodies(),
    }
    if auth != "none":  # the body is checked as with the door open, its operator not used
        ignored = "its operator is ignored: who acts is the token's principal"
        for name in ("EraseRequest", "RetryRequest"):
            schemas[name] = {**schemas[name], "description": ignored}
    for domain in domains:
        for event_type in domain.events:
            name = data_schema_name(domain, event_type)
            schemas[name] = data_schema(domain, event_type)
            schemas[f"{name}.command"] = command_schema(domain, event_type)
            if domain.mode is Mode.SYNC:
                schemas[f"{name}.item"] = item_schema(domain, event_type)
    schemas["MultiAppend"] = multi_append_schema(domains)
    for entry in ERROR_CODES:
        schemas[error_schema_name(entry.code)] = error_schema(entry)
    found: JsonObject = {"schemas": schemas}
    schemes = _security_schemes(auth)
    if schemes:
        found["securitySchemes"] = schemes
    return found


def _bodies() -> dict[str, Schema]:
    obj, integer, text = {"type": "object"}, {"type": "integer"}, {"type": "string"}
    return {
        "Accepted": {"type": "object", "required": ["event_id"], "properties": {
            "event_id": text, "partition": integer, "offset": integer, "version": integer,
            "duplicate": {"type": "boolean"}}},
        "Stored": {"type": "object", "required": ["event_id", "version"], "properties": {
            "event_id": text, "version": integer, "published": {"type": "boolean"},
            "duplicate": {"type": "boolean"}}},
        "StoredAll": {"type": "object", "required": ["events"], "properties": {
            "events": {"type": "array", "items": {
                "type": "object",
                "required": ["aggregate_type", "aggregate_id", "event_id", "version"],
                "properties": {"aggregate_type": text, "aggregate_id": text, "event_id": text,
                               "version": integer}}},
            "published": {"type": "boolean"}, "duplicate": {"type": "boolean"}}},
        "EventPage": {"type": "object", "required": ["events", "more", "next_after_version"],
                      "properties": {"events": {"type": "array", "items": ref("Envelope")},
                                     "more": {"type": "boolean"}, "next_after_version": integer}},
        "GlobalPage": {"type": "object", "required": ["events", "positions", "more", "next"],
                       "properties": {"events": {"type": "array", "items": ref("Envelope")},
                                      "positions": {"type": "array", "items": text,
                                                    "description": "the position right after "
                                                    "each event: resume there (after=)"},
                                      "more": {"type": "boolean"},
                                      "next": {**text, "description": "the position after "
                                               "everything this page read: the next page's "
                                               "after"}}},
        "State": {"type": "object", "required": ["version", "state"],
                  "properties": {"version": integer, "state": {}}},
        "Snapshot": {"type": "object", "required": ["version", "state", "taken_at"],
                     "properties": {"version": integer, "state": {}, "taken_at": text}},
        "Outcome": {"type": "object", "required": ["outcome", "event_id"], "properties": {
            "outcome": {"enum": ["stored", "rejected", "accepted", "in_progress", "unknown"]},
            "event_id": text, "command_id": {"type": ["string", "null"]},
            "version": integer, "reason": text, "message": text}},
        "Erasure": {"type": "object", "required": ["subject", "erased_at", "by"], "properties": {
            "subject": text, "erased_at": text, "by": text, "keys_destroyed": integer,
            "already_erased": {"type": "boolean"},
            "unreadable_everywhere_within_s": {"type": "number"}}},
        "EraseRequest": {"type": "object", "additionalProperties": False, "properties": {
            "operator": _operator("erases")}},
        "Health": {"type": "object", "required": ["status", "roles"], "properties": {
            "status": {"enum": ["alive", "failed"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "dependencies": obj, "ready": obj, "auth": text}},
        "Ready": {"type": "object", "required": ["ready", "checks"],
                  "properties": {"ready": {"type": "boolean"}, "checks": obj,
                                 "idle": {"type": "boolean", "description": "a member of its "
                                          "group holding no partition (more members than "
                                          "partitions): ready, with no work"}}},
        "TypeListing": {"type": "object",
                        "required": ["aggregate_type", "mode", "event_types", "personal",
                                     "queries"],
                        "properties": {"aggregate_type": text, "mode": text,
                                       "event_types": obj, "personal": {"type": ["object", "null"]},
                                       "queries": {"type": "array", "items": text}}},
        "TypeList": {"type": "object", "required": ["types"], "properties": {
            "types": {"type": "array", "items": ref("TypeListing")}}},
        **_process_bodies(),
    }  # fmt: skip


def _process_bodies() -> dict[str, Schema]:
    """The process managers' answers (``workers.roles.process.desk`` makes them)."""
    text, integer, obj = {"type": "string"}, {"type": "integer"}, {"type": "object"}
    when, texts = {"type": ["string", "null"]}, {"type": "array", "items": {"type": "string"}}
    deadline = {
        "type": "object",
        "required": ["id", "name", "due_at"],
        "properties": {"id": text, "name": text, "due_at": text, "data": obj, "key": text},
    }
    return {
        "ProcessList": {"type": "object", "required": ["processes"], "properties": {
            "processes": {"type": "array", "items": {"type": "object", "required": [
                "name", "principal", "instances"], "properties": {
                "name": text, "principal": text, "roles": texts, "starts_on": texts,
                "advances_on": texts, "ends_on": texts, "sends": texts,
                "instances": {"type": "object", "additionalProperties": integer}}}}}},
        "ProcessInstance": {"type": "object", "required": ["process", "key", "status",
                                                            "revision"], "properties": {
            "process": text, "key": text,
            "status": {"enum": ["active", "done", "stuck", "retrying"]}, "revision": integer,
            "state": {"type": ["object", "null"]}, "started_at": text, "updated_at": text,
            "seen": {"type": "object", "additionalProperties": integer}, "next_due": when,
            "deadlines": {"type": "array", "items": ref("PendingDeadline")},
            "fired": {"type": "array", "items": obj}, "outbox": {"type": "array", "items": obj},
            "held": {"type": "array", "items": obj}, "retries": integer,
            "stuck": {"type": ["object", "null"], "properties": {
                "reason": {"enum": ["reaction_failed", "reaction_invalid", "command_refused",
                                    "state_unstorable"]},
                "detail": text, "at": text, "attempts": integer, "trigger": {}}}}},
        "InstancePage": {"type": "object", "required": ["instances", "more", "next_after"],
                         "properties": {"instances": {"type": "array",
                                                      "items": ref("ProcessInstance")},
                                        "more": {"type": "boolean"}, "next_after": when}},
        "PendingDeadline": deadline,
        "DeadlineList": {"type": "object", "required": ["deadlines"], "properties": {
            "deadlines": {"type": "array", "items": ref("PendingDeadline")}}},
        "RetryRequest": {"type": "object", "additionalProperties": False, "properties": {
            "operator": _operator("retries")}},
    }  # fmt: skip


def _operator(acts: str) -> Schema:
    """An operator's name as every desk takes it (``check_operator``), typed where the door is
    open."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_OPERATOR,
        "pattern": PRINTABLE,
        "description": f"only with EVENTFLEET_AUTH=none: who {acts}",
    }
