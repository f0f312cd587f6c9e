"""Posting an event to an aggregate from the console (``/console/post``).

The form is generated from the domain's declared schema (the ``data`` schema the API's OpenAPI
document gives, ``workers.http.openapi_schemas.data_schema``): text and numbers as inputs, a
choice as a select, lists and objects as JSON. Review shows the exact request
(``POST /v1/{type}/{id}/events`` and its body); only its confirm sends it, through this
process's command path as the API does (the store still judges it), and shows the answer as
the API gives it. A bad form comes back with the error, and nothing is sent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlencode

import orjson

from snapshot_rules.domain import Domain
from topics.errors import EventfleetError, InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.http.bodies import posted
from workers.http.console.acting import (
    audit,
    carried,
    confirm_form,
    confirmed,
    error_note,
    operator_field,
    outcome,
    read_only,
    who,
)
from workers.http.console.html import esc, json_block
from workers.http.console.session import csrf_field
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.openapi_schemas import Schema, data_schema
from workers.http.queries import failure
from workers.roles.command.requests import CommandRequest, parse_request
from workers.runtime.answers import answer_of

ACTION = "post_event"
COMMAND_PREFIX = "console:"
"""The command id a review gives its request: confirming twice stores the event once."""
_FIELD = "data."


class PostEventPages:
    """``GET /console/post``: the form; ``POST …/review``: the exact request; ``…/send``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def form(self, request: Request) -> Response:
        """The chooser (type, event type, aggregate id); with them, the event's fields."""
        chosen = request.query.get("event", "")
        aggregate_id = request.query.get("aggregate_id", "")
        domain, event_type = self._chosen(chosen) if chosen else (None, "")
        body = read_only(self.console) + self._chooser(chosen, aggregate_id)
        if domain is not None and self.console.actions:
            body += self._fields_form(request, domain, event_type, aggregate_id, {}, "")
        return self.console.html("Post an event", body)

    async def review(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        chosen, aggregate_id = str(form.get("event", "")), str(form.get("aggregate_id", ""))
        try:
            domain, event_type = self._chosen(chosen)
        except EventfleetError as e:  # the chooser again, with the error
            page = error_note(str(e)) + self._chooser(chosen, aggregate_id)
            return self.console.html("Post an event", page, failure(e).status)
        typed = {name[len(_FIELD) :]: str(v) for name, v in form.items() if name.startswith(_FIELD)}
        try:
            data = data_of(data_schema(domain, event_type), typed)
            sent: JsonObject = {"type": event_type, "data": data}
            version = str(form.get("expected_version", "")).strip()
            if version:
                sent["expected_version"] = _whole(version)
            sent["command_id"] = f"{COMMAND_PREFIX}{uuid.uuid4()}"
            self._command(request, domain.name, aggregate_id, sent)
        except EventfleetError as e:  # the filled form again, with the error: nothing is sent
            page = self._chooser(chosen, aggregate_id) + self._fields_form(
                request, domain, event_type, aggregate_id, form, str(e)
            )
            return self.console.html("Post an event", page, failure(e).status)
        route = _route(domain.name, aggregate_id)
        fields = {
            "aggregate_type": domain.name,
            "aggregate_id": aggregate_id,
            "request": orjson.dumps(sent).decode(),
            "operator": who(self.console, request, form),
        }
        body = (
            "<p>Exactly this request will be sent through the command path, "
            f"as <strong>{esc(fields['operator'])}</strong> (nothing is sent before the "
            "confirm):</p>"
            f'<p><code id="route">POST {esc(route)}</code></p>'
            f'<div id="preview">{json_block(sent)}</div>'
            + confirm_form(
                request,
                "/console/post/send",
                fields,
                label="Confirm: send it",
                cancel=_again(chosen, aggregate_id),
            )
        )
        return self.console.html("Review the event", body)

    async def send(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        confirmed(form)
        limit = self.console.rt.settings.max_body_bytes
        sent = carried(form, "request", limit=limit)
        aggregate_type = str(form.get("aggregate_type", ""))
        aggregate_id = str(form.get("aggregate_id", ""))
        operator = who(self.console, request, form)
        command = self._command(request, aggregate_type, aggregate_id, sent)
        answer = answer_of(await self.console.rt.commands.handle(command))
        done = await audit(
            self.console,
            operator=operator,
            action=ACTION,
            target=f"{aggregate_type}/{aggregate_id}",
            submitted={"route": _route(aggregate_type, aggregate_id), "body": sent},
            status=answer.status,
            result=answer.body,
        )
        body = f'<p><code id="route">POST {esc(_route(aggregate_type, aggregate_id))}</code></p>'
        return self.console.html("Event sent", body + outcome(done))

    def _command(
        self, request: Request, aggregate_type: str, aggregate_id: str, sent: Mapping[str, Json]
    ) -> CommandRequest:
        """What the API would make of this request (InvalidInput naming what is wrong): the
        aggregate's type and id, the body strictly, the event type and its data checked
        against the declared schema before anything is sent."""
        domain = self.console.rt.domains.get(aggregate_type)
        command = parse_request(
            domain.name,
            aggregate_id,
            orjson.dumps(sent),
            max_bytes=self.console.rt.settings.max_body_bytes,
        )
        if not command.command_id or not command.command_id.startswith(COMMAND_PREFIX):
            raise InvalidInput("the request lost its review's command id; review it again.")
        domain.check_data(command.type, command.data)  # UnknownEventType, InvalidEventData
        # the event records who sent it, as the door authenticated them (never the form)
        return replace(command, actor=self.console.fleet.door.actor(request))

    def _chosen(self, chosen: str) -> tuple[Domain, str]:
        """``<type>:<event type>`` as a domain and one of its event types."""
        aggregate_type, _, event_type = chosen.partition(":")
        domain = self.console.rt.domains.get(aggregate_type)  # 404 naming the enabled ones
        domain.spec(event_type)  # UnknownEventType naming the known ones
        return domain, event_type

    def _chooser(self, chosen: str, aggregate_id: str) -> str:
        groups = "".join(
            f'<optgroup label="{esc(d.name)}">'
            + "".join(
                f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(t)}</option>'
                for t in d.events
                for v in [f"{d.name}:{t}"]
            )
            + "</optgroup>"
            for d in self.console.rt.domains
        )
        return (
            '<form method="get" action="/console/post" id="choose">'
            f'<label>type and event type <select name="event" id="event">{groups}</select></label> '
            f'<label>aggregate id <input name="aggregate_id" id="aggregate_id" '
            f'value="{esc(aggregate_id)}" size="24"></label> '
            '<button type="submit" id="choose-fields">fields</button></form>'
        )

    def _fields_form(
        self,
        request: Request,
        domain: Domain,
        event_type: str,
        aggregate_id: str,
        typed: Mapping[str, object],
        message: str,
    ) -> str:
        schema = data_schema(domain, event_type)
        required = set(_strings(schema.get("required")))
        properties = schema.get("properties")
        rows = "".join(
            _field(name, kind, name in required, str(typed.get(_FIELD + name, "")))
            for name, kind in (properties.items() if isinstance(properties, dict) else ())
            if isinstance(kind, dict)
        )
        version = esc(str(typed.get("expected_version", "")))
        return (
            f"<h2>{esc(domain.name)} · {esc(event_type)}</h2>"
            + error_note(message)
            + '<form method="post" action="/console/post/review" id="post-event">'
            + csrf_field(request)
            + f'<input type="hidden" name="event" value="{esc(f"{domain.name}:{event_type}")}">'
            + f'<p><label>aggregate id <input name="aggregate_id" value="{esc(aggregate_id)}" '
            'size="24" required></label></p>'
            + f'<table id="fields"><tbody>{rows}</tbody></table>'
            + '<p><label>expected version (optional) <input name="expected_version" '
            f'value="{version}" size="8"></label></p>'
            + operator_field(self.console, request)
            + '<p><button type="submit" id="review">Review</button></p></form>'
        )


def data_of(schema: Schema, typed: Mapping[str, str]) -> JsonObject:
    """The typed fields as the event's data, each read as its schema says (an empty field is
    left out: the schema's check names a required one). InvalidInput for a field that is not
    of its kind."""
    properties = schema.get("properties")
    kinds = properties if isinstance(properties, dict) else {}
    unknown = sorted(typed.keys() - kinds.keys())
    if unknown:
        raise InvalidInput(f"the event has no field {unknown[0]!r}.")
    data: JsonObject = {}
    for name, text in typed.items():
        kind = kinds[name]
        if text.strip() == "":
            continue
        data[name] = _value(name, kind if isinstance(kind, dict) else {}, text)
    return data


def _value(name: str, kind: Mapping[str, Json], text: str) -> Json:
    shape = kind.get("type")
    if shape == "string":
        return text
    if shape == "integer":
        return _whole(text.strip(), name)
    if shape == "number":
        try:
            number = float(text)
        except ValueError:
            raise InvalidInput(f"field {name!r}: {text[:40]!r} is no number.") from None
        if not math.isfinite(number):
            raise InvalidInput(f"field {name!r}: {text[:40]!r} is no finite number.")
        return int(number) if number.is_integer() and "." not in text else number
    try:
        found: Json = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"field {name!r} is no JSON ({e}).") from e
    return found


def _whole(text: str, name: str = "expected_version") -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise InvalidInput(f"field {name!r}: {text[:40]!r} is no whole number.") from None


def _field(name: str, kind: Mapping[str, Json], required: bool, value: str) -> str:
    ident = esc(_FIELD + name)
    options = _strings(kind.get("enum"))
    if options:
        choices = "".join(
            f'<option value="{esc(o)}"{" selected" if o == value else ""}>{esc(o or "—")}</option>'
            for o in ([] if required else [""]) + options
        )
        control = f'<select name="{ident}" id="{ident}">{choices}</select>'
    elif kind.get("type") in ("string", "integer", "number"):
        size = 40 if kind.get("type") == "string" else 12
        control = f'<input name="{ident}" id="{ident}" value="{esc(value)}" size="{size}">'
    else:  # a list, an object, or a kind JSON Schema cannot say: JSON
        control = f'<textarea name="{ident}" id="{ident}" rows="4">{esc(value)}</textarea>'
    mark = " *" if required else ""
    return (
        f'<tr><th><label for="{ident}">{esc(name)}{mark}</label></th><td>{control}</td>'
        f'<td class="muted">{esc(describe(kind))}</td></tr>'
    )


def describe(kind: Mapping[str, Json]) -> str:
    """A field's schema in a few words: ``JSON list of 1 to 100 items: {sku: text …}``."""
    options = _strings(kind.get("enum"))
    if options:
        return "one of " + ", ".join(options)
    shape = kind.get("type")
    if shape == "string":
        return f"text, at most {kind.get('maxLength', '—')} characters"
    if shape in ("integer", "number"):
        limits = [
            f"{sign} {kind[key]}"
            for key, sign in (("exclusiveMinimum", ">"), ("minimum", ">="), ("maximum", "<="))
            if key in kind
        ]
        name = "whole number" if shape == "integer" else "number"
        return f"{name}, {' and '.join(limits)}" if limits else name
    if shape == "array":
        item = kind.get("items")
        inner = describe(item) if isinstance(item, dict) else "anything"
        low, high = kind.get("minItems", 0), kind.get("maxItems", "…")
        return f"JSON list of {low} to {high} items: {inner}"
    if shape == "object":
        properties = kind.get("properties")
        required = set(_strings(kind.get("required")))
        fields = [
            f"{name}{'' if name in required else '?'}: {describe(inner)}"
            for name, inner in (properties.items() if isinstance(properties, dict) else ())
            if isinstance(inner, dict)
        ]
        return "{" + "; ".join(fields) + "}"
    return str(kind.get("description", "JSON"))


def _strings(value: Json | None) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _route(aggregate_type: str, aggregate_id: str) -> str:
    return f"/v1/{aggregate_type}/{aggregate_id}/events"


def _again(chosen: str, aggregate_id: str) -> str:
    return "/console/post?" + urlencode({"event": chosen, "aggregate_id": aggregate_id})
