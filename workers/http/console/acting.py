"""What every console action shares: the confirm step, the audit record, the answer shown.

An action (posting an event, producing a record, resetting a group's offsets) is reviewed
first: the review page shows exactly what will happen and carries it in hidden fields; only
its confirm (``confirm=yes``) acts. Each confirmed action is kept in the audit trail
(``console_audit``) with who, when, what and the answer, accepted or refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import orjson

from topics.envelope import utc_now
from topics.errors import InvalidInput
from topics.jsonvalue import Json, JsonObject
from workers.http.console.html import esc, hidden, json_block, link
from workers.http.console.session import csrf_field
from workers.http.console.views import READ_ONLY, Console
from workers.http.edge.request import MultiValues, Request
from workers.ports import OperatorAction
from workers.roles.deadletter import MAX_OPERATOR

VIA = "console"


def confirmed(form: MultiValues) -> None:
    """InvalidInput unless the form came from a review page's confirm button."""
    if form.get("confirm") != "yes":
        raise InvalidInput("an action needs its review step: review it first, then confirm.")


def carried(form: MultiValues, name: str, *, limit: int) -> JsonObject:
    """The JSON object a review page carried in the hidden field ``name``."""
    raw = str(form.get(name, ""))
    if len(raw) > limit:
        raise InvalidInput(f"{name} is over {limit} bytes (EVENTFLEET_MAX_BODY_BYTES).")
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"{name} is no JSON ({e}); review the action again.") from e
    if not isinstance(found, dict):
        raise InvalidInput(f"{name} must be a JSON object; review the action again.")
    return found


def confirm_form(
    request: Request, target: str, fields: Mapping[str, str], *, label: str, cancel: str
) -> str:
    """The review page's confirm button: the CSRF field, what was reviewed, ``confirm=yes``."""
    return (
        f'<form method="post" action="{esc(target)}" id="confirm-form">'
        + csrf_field(request)
        + "".join(hidden(name, value) for name, value in fields.items())
        + hidden("confirm", "yes")
        + f'<button type="submit" id="confirm">{esc(label)}</button> '
        + link(cancel, "cancel")
        + "</form>"
    )


async def audit(
    console: Console,
    *,
    operator: str,
    action: str,
    target: str,
    submitted: Mapping[str, Json],
    status: int,
    result: Mapping[str, Json],
) -> OperatorAction:
    """Keep one confirmed action in the audit trail, as the signed-in principal did it."""
    done = OperatorAction(
        id=str(uuid.uuid4()),
        at=utc_now(),
        operator=operator,
        via=VIA,
        action=action,
        target=target,
        submitted=dict(submitted),
        status=status,
        result=dict(result),
    )
    await console.rt.stores.actions.record(done)
    return done


def outcome(done: OperatorAction) -> str:
    """The answer of an action as its caller gets it: the status and the JSON body."""
    ok = done.status < 300
    return (
        f'<p id="outcome" class="{"good" if ok else "bad"}">status {done.status}: '
        f"{'done' if ok else 'refused'}</p>"
        f'<div id="answer">{json_block(dict(done.result))}</div>'
        f"<p>Recorded in the {link('/console/audit', 'audit trail')} as {esc(done.id)}.</p>"
    )


def who(console: Console, request: Request, form: MultiValues) -> str:
    """Who acts: the signed-in principal; the typed name only when the door is open."""
    return console.operator(request, str(form.get("operator", "")))


def operator_field(console: Console, request: Request, element_id: str = "operator") -> str:
    """The form's operator: the signed-in principal, or a typed name when the door is open
    (``element_id``: one per form of a page)."""
    actor = console.fleet.door.actor(request)
    if actor is not None:
        return f'<p class="muted" id="{element_id}">as <strong>{esc(actor.principal)}</strong></p>'
    return (
        f'<p><label>Operator: <input name="operator" id="{element_id}" '
        f'maxlength="{MAX_OPERATOR}" required></label></p>'
    )


def read_only(console: Console) -> str:
    """What an action's page shows instead of its form while the console is read-only."""
    return "" if console.actions else f'<p class="note" id="read-only">{esc(READ_ONLY)}</p>'


def error_note(message: str) -> str:
    return f'<p class="bad" id="error">{esc(message)}</p>' if message else ""
