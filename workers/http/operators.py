"""Who acts in an operator action over HTTP (an erasure, a process instance's retry), or why not.

With identity on (``EVENTFLEET_AUTH=jwt|proxy``) the caller must hold the operator role
(``EVENTFLEET_AUTH_OPERATOR_ROLE``) and is recorded as the principal its token names, whatever
the body says. With the door open (``EVENTFLEET_AUTH=none``) an action is allowed only on a
process with operator actions on (``EVENTFLEET_CONSOLE_ACTIONS=true``), by the operator the
body names (``{"operator": "alice"}``, default ``http``), checked as every desk checks a name
(``check_operator``), as in the console and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from topics.errors import Forbidden, InvalidInput
from topics.jsonvalue import JsonObject
from workers.http.edge.request import Request
from workers.roles.deadletter import check_operator
from workers.runtime.answers import Answer, error
from workers.runtime.fleet import Fleet


@dataclass(frozen=True, slots=True)
class Action:
    """An operator action, as its refusals name it: ``to`` what the role allows ("erase a
    subject"), who ``acts`` ("erases"), and ``off``, what a process with actions off says."""

    to: str
    acts: str
    off: str


def operator_of(fleet: Fleet, request: Request, body: JsonObject, action: Action) -> str | Answer:
    """Who does ``action``, or the refusal (a 403); InvalidInput when the typed name is not one."""
    actor = fleet.door.actor(request)
    if actor is not None:
        role = fleet.runtime.settings.auth_operator_role
        if not actor.has(role):
            refusal = Forbidden(
                "role_required", f"{actor.principal} needs the role {role} to {action.to}."
            )
            return fleet.door.refused(refusal)
        return actor.principal
    if not fleet.runtime.settings.console_actions:
        return error(403, "console_read_only", action.off, setting="EVENTFLEET_CONSOLE_ACTIONS")
    operator = body.get("operator", "http")
    if not isinstance(operator, str):
        raise InvalidInput(f"operator must be a name (text): who {action.acts}.")
    return check_operator(operator, action.acts)


def operator_body(raw: bytes) -> JsonObject:
    """An operator action's body: empty, or a JSON object of ``operator`` alone; InvalidInput
    naming what is wrong (a misspelt field is refused, never taken for the default name)."""
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise InvalidInput('the body must be empty or a JSON object like {"operator": "alice"}.')
    unknown = sorted(set(body) - {"operator"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; the body takes only 'operator'.")
    return body
