"""Cross-site protection: no state-changing request and no WebSocket upgrade from another origin.

A browser attaches its cookies (the console's session, an authenticating proxy's) and, for a
WebSocket, no CORS check applies: a page on another site could post a form, ``fetch()`` with
``no-cors`` or open a socket to the fleet as the signed-in user. Browsers mark every such request:
``Sec-Fetch-Site`` (all current browsers) and ``Origin`` (always on a cross-site POST and on every
WebSocket upgrade). The door (``workers.runtime.door.auth``) asks ``OriginPolicy.refusal`` about
every POST, PUT, PATCH and DELETE and every WebSocket upgrade, in every auth mode, before anything
else.

A request carrying neither header is no browser's (curl, a server with a bearer token): let in.
``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` is refused (``same-site``, a sibling
subdomain, too), unless its ``Origin`` is in ``EVENTFLEET_ALLOWED_ORIGINS``. ``Origin`` must be the
request's own (scheme, host, port) or allowed; ``null`` (a sandboxed frame, a ``data:`` page) is
refused. The request's own host is its ``Host`` header; ``X-Forwarded-Host`` and
``X-Forwarded-Proto`` count only from an address in ``EVENTFLEET_AUTH_TRUSTED_PROXIES``. Without
TLS on the socket and without a trusted ``X-Forwarded-Proto`` the scheme is unknown (a
TLS-terminating ingress in front): the host and port are compared, as written by the browser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from topics.errors import Forbidden
from workers.runtime.door.identity import trusted_networks, trusted_peer
from workers.runtime.door.incoming import Incoming
from workers.runtime.settings import Settings

STATE_CHANGING = frozenset(("POST", "PUT", "PATCH", "DELETE"))
SAME = frozenset(("same-origin", "none"))
"""``Sec-Fetch-Site`` values of a request the page's own origin (or the user, typing) made."""
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int]
"""(scheme, host, port), lower-case, the port made explicit."""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CrossOrigin(Forbidden):
    """A state-changing request or WebSocket upgrade from another site's page; ``reason`` says
    how it was told (``cross_site``, ``foreign_origin``, ``opaque_origin``)."""

    code = "cross_origin"


def parse_origin(raw: str) -> Origin | None:
    """``https://Host:443`` as ``("https", "host", 443)``; None for ``null`` or a malformed one."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username is not None:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def allowed_origins(raw: str) -> frozenset[Origin]:
    """EVENTFLEET_ALLOWED_ORIGINS parsed (settings checked the form of each entry)."""
    found = (parse_origin(part) for part in raw.split(",") if part.strip())
    return frozenset(origin for origin in found if origin is not None)


def _split_host(raw: str) -> tuple[str, int | None] | None:
    """A ``Host`` header as (host, explicit port or None)."""
    try:
        parts = urlsplit("//" + raw.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which origins may change state here (besides the request's own)."""

    allowed: frozenset[Origin] = frozenset()
    trusted: Sequence[Network] = ()
    """Proxies whose ``X-Forwarded-Host``/``-Proto`` name the browser's view of this fleet."""

    @classmethod
    def of(cls, settings: Settings) -> OriginPolicy:
        return cls(
            allowed_origins(settings.allowed_origins),
            tuple(trusted_networks(settings.auth_trusted_proxies)),
        )

    def refusal(self, request: Incoming) -> CrossOrigin | None:
        """Why this request may not be taken from where it came, or None (see the module)."""
        if request.method not in STATE_CHANGING and not upgrade(request):
            return None
        headers = request.headers
        raw_origin = headers.get("Origin")
        site = headers.get("Sec-Fetch-Site")
        if raw_origin is None and site is None:
            return None  # no browser sent this
        origin = parse_origin(raw_origin) if raw_origin is not None else None
        if origin is not None and origin in self.allowed:
            return None
        what = _what(request)
        if site is not None and site.strip().lower() not in SAME:
            return CrossOrigin(
                "cross_site",
                f"{what} came from another site's page (Sec-Fetch-Site: {site[:40]}); {_FIX}",
            )
        if raw_origin is None:
            return None  # same-origin by Sec-Fetch-Site, which only a browser sets
        if origin is None:
            return CrossOrigin(
                "opaque_origin",
                f"{what} came from a page without an origin (Origin: {raw_origin[:60]}); {_FIX}",
            )
        if not self.own(request, origin):
            shown = f"{origin[0]}://{origin[1]}:{origin[2]}"
            return CrossOrigin(
                "foreign_origin", f"{what} came from a page on {shown}, not this fleet; {_FIX}"
            )
        return None

    def own(self, request: Incoming, origin: Origin) -> bool:
        """Whether ``origin`` is the request's own (see the module's note on proxies)."""
        headers = request.headers
        forwarded = trusted_peer(request.remote, self.trusted)
        host_header = (headers.get("X-Forwarded-Host") if forwarded else None) or request.host
        host = _split_host(host_header.split(",")[0])
        if host is None:
            return False
        scheme: str | None = "https" if request.secure else None
        if forwarded and scheme is None:
            proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            scheme = proto if proto in ("http", "https") else None
        name, port = host
        if scheme is not None and scheme != origin[0]:
            return False
        default = _DEFAULT_PORTS[scheme or origin[0]]
        return name == origin[1] and (port if port is not None else default) == origin[2]


_FIX = (
    "state-changing requests and WebSocket upgrades are taken from this fleet's own pages only "
    "(a script or server without a browser sends neither Origin nor Sec-Fetch-Site); if that "
    "page is yours, add its origin to EVENTFLEET_ALLOWED_ORIGINS."
)


def upgrade(request: Incoming) -> bool:
    """A WebSocket handshake (no CORS protects it: the server must check its Origin)."""
    return "websocket" in request.headers.get("Upgrade", "").lower()


def _what(request: Incoming) -> str:
    if upgrade(request):
        return f"the WebSocket to {request.path}"
    return f"this {request.method} to {request.path}"
