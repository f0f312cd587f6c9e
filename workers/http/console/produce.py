"""Producing a raw record to a topic from the console (``/console/produce``): key, headers,
value, and optionally the partition.

The fleet's own topics (its catalog: commands, events, events.stored, the dead letters and the
rest, and any topic under its prefix or its groups' names) take a record only from an
operator who also holds EVENTFLEET_AUTH_ADMIN_ROLE: a raw record there bypasses every check
of the command path. Review shows the exact record; only its confirm produces it, with
acks=all, and the answer names the partition and offset Kafka gave it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from topics.errors import InvalidInput, NotFound, Unavailable
from topics.jsonvalue import JsonObject
from workers.adapters.kafka.groups import KafkaGroupAdmin
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
from workers.http.console.html import esc, json_block, table
from workers.http.console.session import csrf_field
from workers.http.console.views import Console
from workers.http.edge.params import whole
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.queries import failure
from workers.ports import Outgoing
from workers.runtime.answers import error
from workers.runtime.connections import fleet_catalog

ACTION = "produce_record"
TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")
HEADERS_MAX = 64


class ProducePages:
    """``GET /console/produce``: the form; ``POST …/review``: the exact record; ``…/send``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.kafka = KafkaGroupAdmin(console.rt.kafka)
        settings = console.rt.settings
        self._owned = frozenset(spec.name for spec in fleet_catalog(settings, console.rt.domains))
        self._prefixes = tuple(p for p in (settings.topic_prefix, f"{settings.group_id}-") if p)

    async def form(self, request: Request) -> Response:
        asked = {"topic": request.query.get("topic", "")}
        if not self.console.actions:
            return self.console.html("Produce a record", read_only(self.console))
        return self.console.html("Produce a record", await self._form(request, asked, ""))

    async def review(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        try:
            record = await self._record(request, form)
        except InvalidInput as e:  # the filled form again, with the error: nothing is sent
            page = await self._form(request, form, str(e))
            return self.console.html("Produce a record", page, 400)
        except NotFound as e:
            return self.console.html(
                "Produce a record", await self._form(request, form, str(e)), 404
            )
        refused = self._refusal(request, str(record["topic"]))
        if refused is not None:
            return refused
        fields = {
            "record": orjson.dumps(record).decode(),
            "operator": who(self.console, request, form),
        }
        body = (
            "<p>Exactly this record will be produced (acks=all), as "
            f"<strong>{esc(fields['operator'])}</strong>; nothing is sent before the confirm:</p>"
            + _shown(record)
            + confirm_form(
                request,
                "/console/produce/send",
                fields,
                label="Confirm: produce it",
                cancel="/console/produce",
            )
        )
        return self.console.html("Review the record", body)

    async def send(self, request: Request) -> Response:
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        confirmed(form)
        limit = self.console.rt.settings.max_body_bytes
        kept = carried(form, "record", limit=limit)
        record = await self._record(request, _as_form(kept))  # judged again: it may have changed
        refused = self._refusal(request, str(record["topic"]))
        if refused is not None:
            return refused
        topic, partition = str(record["topic"]), record.get("partition")
        outgoing = Outgoing(
            key=None if record["key"] is None else str(record["key"]).encode(),
            value=str(record["value"]).encode(),
            headers=[(str(h[0]), str(h[1]).encode()) for h in _pairs(record["headers"])],
        )
        producer = self.console.rt.adapters.stream.producer(client_id="eventfleet-console")
        try:  # a Kafka that does not take it is audited too, with the answer given
            await producer.start()
            delivery = await producer.send(
                topic, outgoing, partition=partition if isinstance(partition, int) else None
            )
            status, target = 200, f"{topic}/{delivery.partition}/{delivery.offset}"
            result: JsonObject = {
                "topic": delivery.topic,
                "partition": delivery.partition,
                "offset": delivery.offset,
            }
        except Unavailable as e:
            answer = failure(e)
            status, target, result = answer.status, topic, dict(answer.body)
        finally:
            await producer.stop()
        done = await audit(
            self.console,
            operator=who(self.console, request, form),
            action=ACTION,
            target=target,
            submitted=record,
            status=status,
            result=result,
        )
        title = "Record produced" if status < 300 else "Record not produced"
        return self.console.html(title, _shown(record) + outcome(done), status)

    async def _record(self, request: Request, form: Mapping[str, str]) -> JsonObject:
        """The form as a record (InvalidInput naming what is wrong, NotFound for a topic or
        partition the brokers do not have)."""
        topic = str(form.get("topic", "")).strip()
        if not TOPIC_RE.match(topic):
            raise InvalidInput(
                f"topic {topic[:60]!r} is no topic name (1 to 249 letters, digits, . _ -)."
            )
        partitions = await self.kafka.partitions(topic)
        if not partitions:
            raise NotFound(f"the brokers have no topic {topic!r}; create it first.")
        raw = str(form.get("partition", "")).strip()
        partition: int | None = None
        if raw:
            try:  # a whole number as every parameter is read: ASCII digits only (not "²")
                partition = whole("partition", raw, low=0, high=max(partitions))
            except InvalidInput:
                partition = None
            if partition not in partitions:
                raise InvalidInput(
                    f"partition {raw[:20]!r} is not one of {topic}'s: 0 to {max(partitions)}, "
                    "or empty to let the key choose."
                )
        key = str(form.get("key", ""))
        value = str(form.get("value", ""))
        if len(value.encode()) > self.console.rt.settings.max_event_bytes:
            raise InvalidInput(
                f"the value is over {self.console.rt.settings.max_event_bytes} bytes "
                "(EVENTFLEET_MAX_EVENT_BYTES)."
            )
        return {
            "topic": topic,
            "partition": partition,
            "key": key or None,
            "headers": _headers(str(form.get("headers", ""))),
            "value": value,
        }

    def _refusal(self, request: Request, topic: str) -> Response | None:
        """403 for a record on the fleet's own topics without the admin role."""
        actor = self.console.fleet.door.actor(request)
        admin = self.console.rt.settings.auth_admin_role
        if actor is None or actor.has(admin) or not self.internal(topic):
            return None
        answer = error(
            403,
            "forbidden",
            f"{topic} is one of the fleet's own topics: producing to it needs the role {admin} "
            "(EVENTFLEET_AUTH_ADMIN_ROLE) besides the operator's; nothing was produced.",
            reason="admin_role_required",
        )
        body = error_note(str(answer.body["message"])) + json_block(answer.body)
        return self.console.html("Refused", body, answer.status)

    def internal(self, topic: str) -> bool:
        """Whether the fleet owns ``topic``: its catalog, or a name under its topic prefix or
        one of its consumer groups (Faust's changelogs)."""
        return topic in self._owned or any(topic.startswith(p) for p in self._prefixes)

    async def _form(self, request: Request, asked: Mapping[str, str], message: str) -> str:
        def value(name: str) -> str:
            return esc(str(asked.get(name, "")))

        topics = await self.kafka.topics()
        listed = "".join(
            f'<option value="{esc(t)}">{esc("fleet" if self.internal(t) else "")}</option>'
            for t in topics
        )
        admin = self.console.rt.settings.auth_admin_role
        return (
            error_note(message)
            + '<form method="post" action="/console/produce/review" id="produce">'
            + csrf_field(request)
            + f'<p><label>topic <input name="topic" id="topic" value="{value("topic")}" '
            'list="topics" size="40" required></label> '
            f'<datalist id="topics">{listed}</datalist>'
            f'<label>partition <input name="partition" id="partition" value="{value("partition")}" '
            'size="4" placeholder="by key"></label></p>'
            f'<p><label>key <input name="key" id="key" value="{value("key")}" '
            'size="40"></label></p>'
            "<p><label>headers, one <code>name: value</code> a line<br>"
            f'<textarea name="headers" id="headers" rows="3">{value("headers")}</textarea>'
            "</label></p>"
            "<p><label>value (UTF-8 text, e.g. JSON)<br>"
            f'<textarea name="value" id="value">{value("value")}</textarea></label></p>'
            + operator_field(self.console, request)
            + '<p><button type="submit" id="review">Review</button></p></form>'
            f'<p class="muted">The fleet\'s own topics take a record only from an operator with '
            f"the role <code>{esc(admin)}</code> too.</p>"
        )


def _headers(text: str) -> list[list[str]]:
    """``name: value`` lines as header pairs, in order (a name may repeat)."""
    found: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise InvalidInput(f"header line {number} {line[:40]!r} is not `name: value`.")
        found.append([name.strip(), value.strip()])
    if len(found) > HEADERS_MAX:
        raise InvalidInput(f"at most {HEADERS_MAX} headers.")
    return found


def _pairs(value: object) -> list[list[str]]:
    return (
        [list(map(str, p)) for p in value if isinstance(p, list)] if isinstance(value, list) else []
    )


def _as_form(record: JsonObject) -> dict[str, str]:
    """A reviewed record as the form that made it, to be judged again on confirm."""
    headers = "\n".join(f"{h[0]}: {h[1]}" for h in _pairs(record.get("headers")))
    partition = record.get("partition")
    return {
        "topic": str(record.get("topic", "")),
        "partition": "" if partition is None else str(partition),
        "key": str(record.get("key") or ""),
        "headers": headers,
        "value": str(record.get("value", "")),
    }


def _shown(record: JsonObject) -> str:
    partition = record.get("partition")
    rows = [
        ("topic", f"<code>{esc(record['topic'])}</code>"),
        (
            "partition",
            esc("by key (the producer's partitioner)" if partition is None else partition),
        ),
        ("key", "—" if record.get("key") is None else f"<code>{esc(record['key'])}</code>"),
        ("headers", json_block(record.get("headers") or [])),
        ("value", f"<pre>{esc(record.get('value', ''))}</pre>"),
    ]
    return table(("", ""), rows, css_id="record")
