"""The door of the HTTP server: every request but health, readiness and metrics names its caller.

``Door.admit`` asks the process's ``Authenticator`` (``workers.runtime.door.identity``) who calls,
keeps the ``Actor`` on the request for the routes, and says a refusal itself: ``401
unauthenticated`` with ``WWW-Authenticate``, or ``403 forbidden``, JSON with one reason, counted
in ``eventfleet_auth_refusals_total``. It reads a request through ``Incoming`` (what any HTTP
server gives): the HTTP edge (``workers.http.edge``) calls it for every request and sends what
it decides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from topics.envelope import Actor
from topics.errors import ConfigError, Forbidden, Unauthenticated
from workers.metrics import Metrics
from workers.runtime.answers import Answer, failure
from workers.runtime.door.identity import (
    ANONYMOUS,
    Authenticator,
    Credentials,
    JwtAuthenticator,
    KeySet,
    ProxyAuthenticator,
    trusted_networks,
)
from workers.runtime.door.incoming import Incoming
from workers.runtime.door.origins import OriginPolicy
from workers.runtime.settings import Settings
from workers.secrets import Secrets

log = logging.getLogger(__name__)


OPEN_PATHS = frozenset(("/healthz", "/readyz", "/metrics", "/console/login"))
"""Served to anyone: they carry no domain data (the login page only takes a token)."""
OPEN_PREFIXES = ("/console/static/", "/chat/")
"""The console's stylesheet; the chat page and its script and stylesheet (no data: the page
signs in through the console and opens its socket with a ticket, ``workers.http.tickets``)."""
SESSION_COOKIE = "eventfleet_session"
"""The console's login cookie: the bearer token, HttpOnly, SameSite=Strict, Path=/console."""
TICKET_PARAM = "ticket"
"""The query parameter a browser's live connection carries its ticket in."""
JWKS_MAX_BYTES = 1024 * 1024

_CHOOSE = (
    "choose EVENTFLEET_AUTH=jwt (with EVENTFLEET_AUTH_JWKS or EVENTFLEET_AUTH_HS256_SECRET_FILE "
    "or _ENV, EVENTFLEET_AUTH_ISSUER and EVENTFLEET_AUTH_AUDIENCE), proxy (with "
    "EVENTFLEET_AUTH_TRUSTED_PROXIES) or none (open to anyone who reaches the port: "
    "development only)"
)


def auth_problem(settings: Settings) -> str | None:
    """Why these settings give no working authentication (one line naming them), or None."""
    mode = settings.auth
    if mode == "":
        return f"EVENTFLEET_AUTH is not set: {_CHOOSE}."
    if mode == "jwt":
        missing = [
            name
            for name, value in (
                (
                    "EVENTFLEET_AUTH_JWKS or EVENTFLEET_AUTH_HS256_SECRET_FILE (or _ENV)",
                    settings.auth_jwks
                    or settings.auth_hs256_secret_file
                    or settings.auth_hs256_secret_env,
                ),
                ("EVENTFLEET_AUTH_ISSUER", settings.auth_issuer),
                ("EVENTFLEET_AUTH_AUDIENCE", settings.auth_audience),
            )
            if not value
        ]
        if missing:
            return f"EVENTFLEET_AUTH=jwt needs {', '.join(missing)}."
    if mode == "proxy" and not settings.auth_trusted_proxies:
        return (
            "EVENTFLEET_AUTH=proxy needs EVENTFLEET_AUTH_TRUSTED_PROXIES (the proxy's CIDRs); "
            "without it no request could be trusted."
        )
    return None


async def make_authenticator(
    settings: Settings, secrets: Secrets, *, required: bool
) -> Authenticator:
    """The authenticator the settings describe, its keys loaded, with the HS256 secret read at
    start (``secrets``); ConfigError if it cannot work.

    ``required`` (``eventfleet worker``): no choice is a ConfigError; otherwise (embedded uses
    such as the benchmarks) no choice means open, with a warning.
    """
    problem = auth_problem(settings)
    if problem is not None and (required or settings.auth != ""):
        raise ConfigError(problem)
    if settings.auth in ("", "none"):
        log.warning(
            "EVENTFLEET_AUTH=%s: the HTTP API and the console are open to anyone who reaches "
            "port %s; use jwt or proxy outside development.",
            settings.auth or "(unset)",
            settings.http_port,
        )
        return Authenticator()
    if settings.auth == "proxy":
        return ProxyAuthenticator(trusted_networks(settings.auth_trusted_proxies))
    keys = None
    if settings.auth_jwks:
        keys = KeySet(
            jwks_loader(settings.auth_jwks),
            refresh_s=settings.auth_jwks_refresh_s,
            max_age_s=settings.auth_jwks_max_age_s,
        )
        try:
            await keys.start()
        except (OSError, TimeoutError) as e:
            raise ConfigError(
                f"EVENTFLEET_AUTH_JWKS={settings.auth_jwks!r} could not be read: {e}"
            ) from None
    secret = secrets.auth_hs256_secret
    return JwtAuthenticator(
        keys=keys,
        secret=None if secret is None else secret.reveal(),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        roles_claim=settings.auth_roles_claim,
        leeway_s=settings.auth_leeway_s,
    )


def jwks_loader(source: str, *, timeout_s: float = 5.0) -> Callable[[], Awaitable[bytes]]:
    """Read the JWKS from a file, or fetch it over https (http only from this machine)."""
    parts = urlsplit(source)
    if parts.scheme not in ("https", "http"):

        async def read() -> bytes:
            return await asyncio.to_thread(Path(source).read_bytes)

        return read
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"EVENTFLEET_AUTH_JWKS={source!r}: fetch keys over https (plain http is accepted "
            "from this machine only)."
        )

    async def fetch() -> bytes:
        import httpx  # only keys fetched over http(s) need it: ~0.1 s of every process's start

        try:
            async with (
                httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
                client.stream("GET", source) as response,
            ):
                if response.status_code != 200:
                    raise OSError(f"{source} answered {response.status_code}")
                body = bytearray()  # whole, however it arrives, and no more than the bound
                async for chunk in response.aiter_bytes(65536):
                    body += chunk
                    if len(body) > JWKS_MAX_BYTES:
                        raise OSError(f"{source} sent more than {JWKS_MAX_BYTES} bytes")
        except httpx.HTTPError as e:
            raise OSError(f"{source}: {e}") from None
        return bytes(body)

    return fetch


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the door answers instead of the route: a JSON answer with headers, or a redirect
    (``location``: a browser without a session is sent to sign in)."""

    answer: Answer
    headers: Mapping[str, str] = field(default_factory=dict)
    location: str | None = None


RedeemTicket = Callable[[Incoming, Credentials], Awaitable[tuple[Actor, float | None]]]


def credentials_of(request: Incoming, mode: str | None = None) -> Credentials:
    """What ``request`` presents; with ``mode``, only what that mode's authenticator reads
    (a token for jwt, the proxy's headers and address for proxy), since every request pays
    for each header looked up."""
    headers = request.headers
    path = request.path
    console = path == "/console" or path.startswith("/console/")
    tokens, proxied = mode != "proxy", mode != "jwt"
    return Credentials(
        authorization=tuple(headers.getall("Authorization", ())) if tokens else (),
        cookie_token=request.cookies.get(SESSION_COOKIE) if tokens and console else None,
        forwarded_user=tuple(headers.getall("X-Forwarded-User", ())) if proxied else (),
        forwarded_groups=tuple(headers.getall("X-Forwarded-Groups", ())) if proxied else (),
        peer=request.remote if proxied else None,
    )


class Door:
    """Who may call, asked of every request, and the one place refusals are said and counted."""

    def __init__(
        self, authenticator: Authenticator, metrics: Metrics, origins: OriginPolicy | None = None
    ) -> None:
        self.authenticator = authenticator
        self._metrics = metrics
        self.origins = origins or OriginPolicy()
        """Which pages may change state here (``workers.runtime.door.origins``): every mode."""
        self.authorize: Callable[[Incoming, Actor], None] | None = None
        """Checks the route's access rule (raises Forbidden); set by the HTTP routes."""
        self.redeem_ticket: RedeemTicket | None = None
        """Reads a request's ``?ticket=`` instead of its credentials (``workers.http.tickets``)."""

    @property
    def open(self) -> bool:
        """EVENTFLEET_AUTH=none: every caller is the anonymous principal, no rule applies."""
        return self.authenticator.mode == "none"

    def actor(self, request: Incoming) -> Actor | None:
        """Who calls, for the record and the rules: None when the door is open."""
        return None if self.open else request.actor

    @property
    def mode(self) -> str:
        return self.authenticator.mode

    async def check(self, request: Incoming, *, open_path: bool) -> Refusal | None:
        """The door's word on a request: on an open path only the cross-site check."""
        if open_path:
            return self.cross_site(request)
        return await self.admit(request)

    async def admit(self, request: Incoming) -> Refusal | None:
        """The door's whole check of a request on a closed path: its refusal, or None with the
        caller kept on the request (``request.actor``, ``request.expires``)."""
        refused = self.cross_site(request)
        if refused is not None:
            return refused
        if self.open:  # EVENTFLEET_AUTH=none: nothing to read, no rule to apply
            request.actor = ANONYMOUS
            return None
        credentials = credentials_of(request, self.mode)
        try:
            if self.redeem_ticket is not None and TICKET_PARAM in request.query:
                actor, expires = await self.redeem_ticket(request, credentials)
            else:
                actor, expires = await self.authenticator.identify(credentials)
            request.actor = actor
            request.expires = expires
            if self.authorize is not None:
                self.authorize(request, actor)
        except Forbidden as e:  # a ticket for another route or principal; the read rule
            return Refusal(self.refused(e))
        except Unauthenticated as e:
            if _browsing_console(request) and not credentials.authorization and self.mode == "jwt":
                # A browser without a session, or with one that expired: sign in again.
                self.count_unauthenticated(e.reason)
                location = f"/console/login?next={quote(request.path_qs)}"
                return Refusal(Answer(303, {}), location=location)
            return self.unauthenticated(e)
        return None

    def cross_site(self, request: Incoming) -> Refusal | None:
        """``403 cross_origin`` for a state-changing request or WebSocket upgrade from another
        site's page, in every auth mode and on every path (counted); None to go on."""
        refusal = self.origins.refusal(request)
        if refusal is None:
            return None
        self.count_forbidden(refusal.reason)
        return Refusal(failure(refusal))

    def count_unauthenticated(self, reason: str) -> None:
        self._metrics.auth_refusals.labels("401", reason).inc()

    def unauthenticated(self, e: Unauthenticated) -> Refusal:
        self.count_unauthenticated(e.reason)
        challenge = self.authenticator.challenge
        if e.reason != "missing_token":
            challenge += f', error="invalid_token", error_description="{e.reason}"'
        return Refusal(failure(e), {"WWW-Authenticate": challenge})

    def count_forbidden(self, reason: str) -> None:
        self._metrics.auth_refusals.labels("403", reason).inc()

    def refused(self, e: Forbidden) -> Answer:
        """The 403 answer of ``e``, counted."""
        self.count_forbidden(e.reason)
        return failure(e)


def _browsing_console(request: Incoming) -> bool:
    return request.method == "GET" and (
        request.path == "/console" or request.path.startswith("/console/")
    )
