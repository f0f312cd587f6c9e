"""What ``eventfleet dev`` prints once it runs: where everything is, built from the enabled
domains."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

import orjson

from snapshot_rules.declaration import ANY, NEW
from snapshot_rules.domain import Domain, Domains
from snapshot_rules.schema import Choice, Kind, ListOf, Number, Obj, Optional, Text
from topics.jsonvalue import Json
from workers.devtools.dev_identity import DEV_PRINCIPAL, SignedUser
from workers.runtime.connections import fleet_catalog
from workers.runtime.settings import Settings, env_name

EXPORTED = (
    "kafka_url",
    "mongo_url",
    "mongo_database",
    "redis_url",
    "kafka_idempotence",
    "partitions",
    "topic_prefix",
    "domains",
)
"""What every other command needs to reach the dev stack and agree with its topics."""
ORDER_PLACED = {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}}


AUTH_EXPORTED = ("auth", "auth_jwks", "auth_issuer", "auth_audience")
"""With dev's own key: what a worker started from the export block needs to trust it."""
TOKEN_ENV = "EVENTFLEET_TOKEN"
"""Not a setting: the dev token, for the curl lines (``-H "Authorization: Bearer $…"``)."""
API_ENV = "EVENTFLEET_API"
"""Not a setting: the API's base URL (``$EVENTFLEET_API/v1/…``), whatever port dev chose."""
STATUS = "-w ' %{http_code}\\n'"
"""What makes a curl line print the status its comment promises, after the body."""


def api_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}"


def exports(
    settings: Settings,
    token: str | None = None,
    *,
    python_path: str | None = None,
    users: Sequence[SignedUser] = (),
) -> list[str]:
    """``export EVENTFLEET_…=…`` lines that point any shell at this stack, ready to paste.

    ``token`` (``EVENTFLEET_TOKEN``) and each of ``users``' tokens (``EVENTFLEET_TOKEN_ALICE``…)
    first; then ``python_path`` (dev's own ``PYTHONPATH``), absolute: the domains module of
    ``EVENTFLEET_DOMAINS`` may only be importable through it (the tutorial's ``PYTHONPATH=.``).
    """
    lines = [] if token is None else [f"export {TOKEN_ENV}={shlex.quote(token)}"]
    lines += [f"export {u.user.env}={shlex.quote(u.token)}" for u in users]
    if python_path:
        absolute = os.pathsep.join(os.path.abspath(p) for p in python_path.split(os.pathsep) if p)
        lines.append(f"export PYTHONPATH={shlex.quote(absolute)}")
    lines.append(f"export {API_ENV}={shlex.quote(api_url(settings))}")
    auth = AUTH_EXPORTED if settings.auth == "jwt" else ("auth",) if settings.auth else ()
    key = ("master_key_file",) if settings.master_key_file else ()
    managers = ("processes",) if settings.processes else ()  # `eventfleet pm …` reads them
    for name in (*auth, *key, *managers, *EXPORTED):  # EVENTFLEET_DOMAINS: the block's last line
        value = getattr(settings, name)
        text = str(value).lower() if isinstance(value, bool) else settings.masked(name)
        lines.append(f"export {env_name(name)}={shlex.quote(text)}")
    return lines


def authorized(lines: list[str], token: str | None) -> list[str]:
    """curl lines sending the dev token."""
    if token is None:
        return lines
    header = f'-H "Authorization: Bearer ${TOKEN_ENV}" '
    return [line.replace("curl -s ", "curl -s " + header, 1) for line in lines]


def example(kind: Kind) -> Json:
    """A value the schema ``kind`` accepts, for a curl line a newcomer can paste."""
    if isinstance(kind, Obj):
        return {name: example(k) for name, k in kind.fields.items() if not isinstance(k, Optional)}
    if isinstance(kind, Choice):
        return kind.options[0]
    if isinstance(kind, Number):
        return max(1, int(kind.minimum or 1))
    if isinstance(kind, ListOf):
        return [example(kind.item)] * max(1, kind.min_items)
    if isinstance(kind, Text):
        return "text"
    return "value"


def opening(domain: Domain) -> tuple[str, Json] | None:
    """An event type that opens an aggregate of ``domain``, with data its schema accepts."""
    for name, spec in domain.events.items():
        if NEW in spec.after or ANY in spec.after:
            return name, example(spec.schema)
    return None


JSON = "-H 'Content-Type: application/json'"
"""What a POST's curl line says of its body (without it curl sends a form: 415)."""


def tries(api: str, domains: Domains) -> list[str]:
    """curl lines that work against the enabled domains (the example order and account when
    enabled), each printing its answer's status after the body."""
    return [line.replace("curl -s ", f"curl -s {STATUS} ", 1) for line in _tries(api, domains)]


def _tries(api: str, domains: Domains) -> list[str]:
    lines = []
    if "order" in domains:
        body = orjson.dumps(ORDER_PLACED).decode()
        lines.append(f"curl -s -XPOST {api}/v1/order/o-1/events {JSON} -d '{body}'")
    if "account" in domains:
        body = orjson.dumps({"type": "AccountOpened", "data": {"owner": "ada"}}).decode()
        lines.append(f"curl -s -XPOST {api}/v1/account/a-1/events {JSON} -d '{body}'")
    if lines:
        return [
            *lines,
            f"curl -s '{api}/v1/order/o-1/state?min_version=1&wait_ms=2000'"
            if "order" in domains
            else f"curl -s '{api}/v1/account/a-1/state?min_version=1&wait_ms=2000'",
        ]
    for domain in domains:
        first = opening(domain)
        if first is None:
            continue
        body = orjson.dumps({"type": first[0], "data": first[1]}).decode().replace("'", "")
        return [
            f"curl -s -XPOST {api}/v1/{domain.name}/{domain.name}-1/events {JSON} -d '{body}'",
            f"curl -s '{api}/v1/{domain.name}/{domain.name}-1/state?min_version=1&wait_ms=2000'",
        ]
    return []


def banner(
    settings: Settings,
    domains: Domains,
    started: tuple[str, ...],
    token: str | None = None,
    users: Sequence[SignedUser] = (),
) -> str:
    api = api_url(settings)
    topics = ", ".join(spec.name for spec in fleet_catalog(settings, domains))
    embedded = ", ".join(started) or "none (all services from the environment)"
    lines = [
        "",
        "eventfleet dev is running (Ctrl-C stops it and everything it started).",
        "",
        f"  domains   {', '.join(domains.names())}",
        f"  API       {api}/v1/{{aggregate_type}}/{{aggregate_id}}/events",
        f"  health    {api}/healthz   ready: {api}/readyz",
        f"  metrics   {api}/metrics",
        f"  console   {api}/console   (events, dead letters, lag; {api}/ leads there; "
        f"{_actions(settings)})",
        *_chat_line(api, settings, domains),
        f"  kafka     {settings.masked('kafka_url')}   {settings.partitions} partitions each: "
        f"{topics}",
        f"  mongodb   {settings.masked('mongo_url')}   database: {settings.mongo_database}",
        f"  redis     {settings.masked('redis_url')}",
        f"  embedded  {embedded} (removed at exit)",
        f"  auth      {_auth(settings, token)}",
        *_users(users),
    ]
    curls = authorized(tries(api, domains), token)
    if curls:
        lines += [
            "",
            "Try it in a second shell, once the export block below is pasted there:"
            if token
            else "Try it:",
            *(f"  {line}" for line in curls),
        ]
    lines += [
        "",
        "Every other command against this stack (replay, audit, topics check, projections "
        "rebuild): paste into another shell",
        *(
            f"  {line}"
            for line in exports(
                settings, token, python_path=os.environ.get("PYTHONPATH"), users=users
            )
        ),
        "",
    ]
    return "\n".join(lines)


def _chat_line(api: str, settings: Settings, domains: Domains) -> list[str]:
    """The chat page (a chat room in a browser), when the chat room is enabled."""
    if "chat_room" not in domains:
        return []
    how = (
        "the door is open: type a name"
        if settings.auth == "none"
        else "signs in through the console sign-in page: paste a token there"
    )
    return [f"  chat      {api}/chat/lobby   ({how}; any room name)"]


def _auth(settings: Settings, token: str | None) -> str:
    if settings.auth == "none":
        return "none: the API and the console are open to anyone who reaches the port"
    if token is not None:
        return (  # no quote in it: a shell reads every line of the banner
            f"jwt, signed by a key made for this run (issuer {settings.auth_issuer}); a "
            f"24-hour token for each user below, ${TOKEN_ENV} is the one of {DEV_PRINCIPAL}; "
            "the console login page (and so the chat page) takes any of them"
        )
    return f"{settings.auth} (from the environment)"


def _users(users: Sequence[SignedUser]) -> list[str]:
    """One line per dev user: its name, its token's variable, its roles and what they let it do
    (no quote in them: a shell reads every line of the banner)."""
    width = max((len(u.user.env) for u in users), default=0) + 1
    lines = []
    for i, signed in enumerate(users):
        user = signed.user
        roles = ", ".join(user.roles) or "no roles"
        also = f"; also ${TOKEN_ENV}" if user.name == DEV_PRINCIPAL else ""
        lines.append(
            f"  {'users' if i == 0 else '':9s} {user.name:6s} {'$' + user.env:{width}s}  "
            f"{roles}: {user.can}{also}"
        )
    return lines


def _actions(settings: Settings) -> str:
    if settings.console_actions:
        return "operator actions on: replay, erase; --read-only turns them off"
    return "read-only: dead-letter replay and erasure off"
