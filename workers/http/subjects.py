"""``POST /v1/subjects/{subject}/erase``: crypto-shred one subject's personal data (operators).

An operator action: who may erase, and who is recorded, is ``workers.http.operators``'
decision, as for every operator action over HTTP.
"""

from __future__ import annotations

from snapshot_rules.personal import subject_problem
from workers.http.bodies import json_body
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.operators import Action, operator_body, operator_of
from workers.roles.personal import erase_subject
from workers.runtime.answers import Answer, erasure_answer, error
from workers.runtime.fleet import Fleet

ERASE = Action(
    to="erase a subject",
    acts="erases",
    off="erasing a subject is an operator action, off on this process: set "
    "EVENTFLEET_CONSOLE_ACTIONS=true on the process operators use, or run `eventfleet erase`.",
)


def register_erase(fleet: Fleet, api: Api) -> None:
    rt = fleet.runtime

    @api.post(
        "/v1/subjects/{subject}/erase",
        tags=("operations",),
        summary="Erase one subject's personal data (crypto-shredding).",
        errors=("forbidden", "console_read_only", "bad_request", "unauthenticated"),
    )
    async def erase(request: Request) -> Response:
        subject = request.params["subject"]
        raw = await json_body(request, rt.settings.max_body_bytes, rt.settings.body_timeout_s)
        body = operator_body(raw)
        who = operator_of(fleet, request, body, ERASE)
        if isinstance(who, Answer):
            return json_response(who)
        problem = subject_problem(subject)
        if problem is not None:
            return json_response(error(400, "bad_request", f"subject {subject!r:.80} {problem}."))
        outcome = await erase_subject(
            rt.shredder,
            rt.stores.actions,
            subject,
            operator=who,
            via="http",
            cache_ttl_s=rt.settings.key_cache_ttl_s,
            render=erasure_answer,
        )
        return json_response(erasure_answer(outcome))
