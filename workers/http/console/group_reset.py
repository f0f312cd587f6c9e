"""Resetting a consumer group's offsets on one topic from the console
(``/console/groups/{group}/reset``): to the earliest offset held, the end, a time, or an
explicit offset per partition.

Only a group without members is moved (the coordinator is asked first; an active group is
refused naming its members): a member would go on from where it stands and commit over the
reset. The dry run lists each partition's committed offset, the new one and the lag that
follows; only its confirm commits the offsets (from a consumer that never joins the group),
and the confirm checks again that the group is empty and the offsets are still held.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import orjson

from topics.envelope import control_character, parse_utc
from topics.errors import InvalidEnvelope, InvalidInput, NotFound, Unavailable
from topics.jsonvalue import Json, JsonObject
from workers.adapters.kafka.groups import Bounds, GroupState, KafkaGroupAdmin
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
from workers.http.console.html import esc, json_block, link, path, table
from workers.http.console.session import csrf_field
from workers.http.console.views import Console
from workers.http.edge.request import Request
from workers.http.edge.responses import Response
from workers.http.queries import failure
from workers.runtime.answers import error

ACTION = "group_reset"
TARGETS = ("earliest", "latest", "time", "offsets")
GROUP_MAX = 255
_PAIR = re.compile(r"\s*([0-9]{1,9})\s*[=:]\s*([0-9]{1,18})\s*\Z")


class GroupResetPages:
    """The form, the dry run and the confirmed reset of one group's offsets on one topic."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.kafka = KafkaGroupAdmin(console.rt.kafka)

    async def form(self, request: Request) -> Response:
        group = _group(request)
        state = await self.kafka.group(group)
        asked = {"topic": request.query.get("topic", "").strip(), "to": "earliest"}
        shown = ""
        if asked["topic"]:  # where the group stands on it
            partitions = await self.kafka.partitions(asked["topic"])
            if not partitions:
                raise NotFound(f"the brokers have no topic {asked['topic'][:100]!r}.")
            committed = await self.kafka.committed(group, asked["topic"], partitions)
            shown = _committed(asked["topic"], partitions, committed)
        form = self._form(request, group, asked, "") if self.console.actions else ""
        body = _state(state) + shown + (read_only(self.console) or form)
        return self.console.html(f"Reset group {group}", body)

    async def review(self, request: Request) -> Response:
        group = _group(request)
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        state = await self.kafka.group(group)
        if state.members:
            return self._active(state)
        try:
            plan = await self._plan(group, form)
        except (InvalidInput, NotFound) as e:  # the form again, with the error: nothing moved
            status = 404 if isinstance(e, NotFound) else 400
            page = _state(state) + self._form(request, group, form, str(e))
            return self.console.html(f"Reset group {group}", page, status)
        fields = {"plan": orjson.dumps(plan).decode(), "operator": who(self.console, request, form)}
        body = (
            f"<p>Dry run: group <code>{esc(group)}</code> has no member "
            f"({esc(state.state)}). Confirming commits these offsets on "
            f"<code>{esc(plan['topic'])}</code>, as <strong>{esc(fields['operator'])}</strong>; "
            "nothing is changed before the confirm:</p>"
            + _plan_table(plan)
            + confirm_form(
                request,
                path("groups", group, "reset", "apply"),
                fields,
                label="Confirm: reset the offsets",
                cancel=path("groups", group, "reset"),
            )
        )
        return self.console.html(f"Dry run: reset group {group}", body)

    async def apply(self, request: Request) -> Response:
        group = _group(request)
        form = posted(request)  # read whole, CSRF checked: Console.guarded
        confirmed(form)
        plan = carried(form, "plan", limit=self.console.rt.settings.max_body_bytes)
        state = await self.kafka.group(group)
        if state.members:  # a member joined since the dry run
            return self._active(state)
        topic = str(plan.get("topic", ""))
        chosen = {int(p): int(row["new"]) for p, row in _rows(plan).items()}
        await self._check_held(topic, chosen)
        try:  # a Kafka that does not take them is audited too, with the answer given
            await self.kafka.commit(group, topic, chosen)
            now = await self.kafka.committed(group, topic, sorted(chosen))
            status, result = (
                200,
                {
                    "group": group,
                    "topic": topic,
                    "committed": {str(p): o for p, o in sorted(now.items())},
                },
            )
        except Unavailable as e:
            answer = failure(e)
            status, result = answer.status, dict(answer.body)
        done = await audit(
            self.console,
            operator=who(self.console, request, form),
            action=ACTION,
            target=f"{group} on {topic}",
            submitted=plan,
            status=status,
            result=result,
        )
        back = link(path("groups", group, "reset") + f"?topic={topic}", "the group again")
        page = outcome(done) + f"<p>{back}</p>"
        return self.console.html(f"Reset group {group}", page, status)

    def _active(self, state: GroupState) -> Response:
        names = ", ".join(f"{m.member_id} ({m.client_id} at {m.host})" for m in state.members)
        answer = error(
            409,
            "consumer_group_active",
            f"group {state.group} is {state.state} with {len(state.members)} member(s): "
            f"{names}; stop its consumers (or wait until they leave) and reset again. Nothing "
            "was changed.",
            members=[m.member_id for m in state.members],
        )
        body = error_note(str(answer.body["message"])) + _state(state) + json_block(answer.body)
        return self.console.html(f"Group {state.group} is active", body, answer.status)

    async def _plan(self, group: str, form: Mapping[str, str]) -> JsonObject:
        """Each partition's committed, new and end offset, and the lag after the reset."""
        topic = str(form.get("topic", "")).strip()
        partitions = await self.kafka.partitions(topic) if topic else []
        if not partitions:
            raise NotFound(f"the brokers have no topic {topic[:100]!r}; name one the group reads.")
        to = str(form.get("to", ""))
        if to not in TARGETS:
            raise InvalidInput(f"reset to {to[:20]!r}: choose one of {', '.join(TARGETS)}.")
        bounds = await self.kafka.bounds(topic, partitions)
        if to == "earliest":
            chosen = {p: b.earliest for p, b in bounds.items()}
        elif to == "latest":
            chosen = {p: b.end for p, b in bounds.items()}
        elif to == "time":
            at = _moment(str(form.get("time", "")))
            chosen = await self.kafka.at_time(topic, partitions, int(at.timestamp() * 1000))
        else:
            chosen = _offsets(str(form.get("offsets", "")), bounds)
        committed = await self.kafka.committed(group, topic, partitions)
        rows: JsonObject = {
            str(p): {
                "current": committed.get(p),
                "new": new,
                "end": bounds[p].end,
                "lag_after": bounds[p].end - new,
            }
            for p, new in sorted(chosen.items())
        }
        return {
            "group": group,
            "topic": topic,
            "to": to,
            "time": str(form.get("time", "")),
            "partitions": rows,
        }

    async def _check_held(self, topic: str, chosen: Mapping[int, int]) -> None:
        """InvalidInput for an offset no longer held (retention moved past it since the dry
        run) or past the end; NotFound for a partition the topic no longer has."""
        partitions = await self.kafka.partitions(topic)
        missing = sorted(set(chosen) - set(partitions))
        if missing or not chosen:
            raise NotFound(f"{topic} has no partition {missing[:1] or '(none chosen)'}; run again.")
        bounds = await self.kafka.bounds(topic, sorted(chosen))
        _within(chosen, bounds)

    def _form(self, request: Request, group: str, asked: Mapping[str, str], message: str) -> str:
        def value(name: str) -> str:
            return esc(str(asked.get(name, "")))

        picked = str(asked.get("to", "earliest"))
        radios = "".join(
            f'<label><input type="radio" name="to" value="{t}" id="to-{t}"'
            f"{' checked' if t == picked else ''}> {t}</label> "
            for t in TARGETS
        )
        return (
            "<h2>Reset offsets</h2>"
            + error_note(message)
            + f'<form method="post" action="{esc(path("groups", group, "reset", "review"))}" '
            'id="reset">'
            + csrf_field(request)
            + f'<p><label>topic <input name="topic" id="topic" value="{value("topic")}" '
            'size="40" required></label></p>'
            + f"<p>to {radios}</p>"
            + '<p><label>time (UTC) <input name="time" id="time" '
            f'value="{value("time")}" size="24" placeholder="2026-01-01T00:00:00Z"></label> '
            '<label>offsets <input name="offsets" id="offsets" '
            f'value="{value("offsets")}" size="30" placeholder="0=12, 1=40"></label></p>'
            + operator_field(self.console, request)
            + '<p><button type="submit" id="dry-run">Dry run</button></p></form>'
        )


def _group(request: Request) -> str:
    group = request.params["group"]
    if not 0 < len(group) <= GROUP_MAX or control_character(group) is not None:
        raise InvalidInput(
            f"{group[:60]!r} is no consumer group name (1 to {GROUP_MAX} printable characters)."
        )
    return group


def _moment(raw: str) -> datetime:
    if not raw.strip():
        raise InvalidInput("reset to a time: give the time (UTC), e.g. 2026-01-01T00:00:00Z.")
    try:
        return parse_utc(raw.strip(), "time")
    except InvalidEnvelope as e:
        raise InvalidInput(f"{e} (for example 2026-01-01T00:00:00Z).") from e


def _offsets(raw: str, bounds: Mapping[int, Bounds]) -> dict[int, int]:
    """``0=12, 1=40``: the partitions named, each to its offset (the rest stay where they are)."""
    chosen: dict[int, int] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        pair = _PAIR.match(item)
        if pair is None:
            raise InvalidInput(f"offsets: {item.strip()[:40]!r} is not partition=offset.")
        partition, offset = int(pair.group(1)), int(pair.group(2))
        if partition not in bounds:
            raise InvalidInput(
                f"offsets: the topic has no partition {partition} (0 to {max(bounds)})."
            )
        chosen[partition] = offset
    if not chosen:
        raise InvalidInput("offsets: name at least one partition=offset, e.g. 0=12.")
    _within(chosen, bounds)
    return chosen


def _within(chosen: Mapping[int, int], bounds: Mapping[int, Bounds]) -> None:
    for partition, offset in sorted(chosen.items()):
        held = bounds[partition]
        if not held.earliest <= offset <= held.end:
            raise InvalidInput(
                f"offset {offset} of partition {partition} is not held: it holds "
                f"{held.earliest} to {held.end} (its end); choose one in that range."
            )


def _rows(plan: JsonObject) -> dict[str, dict[str, Json]]:
    rows = plan.get("partitions")
    if not isinstance(rows, dict):
        raise InvalidInput("the reset lost its dry run; run it again.")
    found: dict[str, dict[str, Json]] = {}
    for partition, row in rows.items():
        if (
            not partition.isdigit()
            or not isinstance(row, dict)
            or not isinstance(row.get("new"), int)
        ):
            raise InvalidInput("the reset lost its dry run; run it again.")
        found[partition] = row
    return found


def _plan_table(plan: JsonObject) -> str:
    rows = [
        (
            esc(p),
            esc("none" if row.get("current") is None else row["current"]),
            f"<strong>{esc(row['new'])}</strong>",
            esc(row["end"]),
            esc(row["lag_after"]),
        )
        for p, row in _rows(plan).items()
    ]
    headings = ("partition", "committed now", "new offset", "end offset", "lag after")
    return table(headings, rows, css_id="plan")


def _state(state: GroupState) -> str:
    members = (
        table(
            ("member", "client", "host"),
            [(esc(m.member_id), esc(m.client_id), esc(m.host)) for m in state.members],
            css_id="members",
        )
        if state.members
        else '<p id="members">no members: its offsets may be reset</p>'
    )
    return f'<p id="group-state">state: <strong>{esc(state.state)}</strong></p>' + members


def _committed(topic: str, partitions: list[int], committed: Mapping[int, int]) -> str:
    rows = [(esc(p), esc(committed.get(p, "none"))) for p in partitions]
    return f"<h2>Committed on <code>{esc(topic)}</code></h2>" + table(
        ("partition", "offset"), rows, css_id="committed"
    )
