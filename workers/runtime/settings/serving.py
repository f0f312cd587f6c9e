"""The settings of what the fleet serves: the HTTP API, who may call it, the console, and the
personal data it seals."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from workers.runtime.settings.values import MOST, Concern, EnvName, FilePath, Name, Origins, text


class Http(Concern):
    """The HTTP API: where it listens and what a request may hold."""

    http_host: Annotated[str, text("a host name or address", bool)] = "127.0.0.1"
    """address the HTTP API binds"""
    http_port: int = Field(8080, ge=0, le=65535)
    """port of the HTTP API (0: any free port)"""
    allowed_origins: Origins = ""
    """origins besides the fleet's own whose pages may POST and open WebSockets here (README
    Security: cross-site requests)"""
    max_body_bytes: int = Field(64 * 1024, ge=256, le=MOST)
    """largest accepted HTTP request body (413 above)"""
    body_timeout_s: int = Field(30, ge=1, le=600)
    """a request body not whole this long after it began is refused (408)"""
    operator_port: int | None = Field(None, ge=0, le=65535)
    """port of the operator's pages (/metrics, /healthz, /readyz, the console), apart from the
    API's (0: any free port); unset: both on EVENTFLEET_HTTP_PORT"""
    http_header_timeout_s: float = Field(10.0, gt=0, le=300)
    """a request's headers not whole this long after its first byte (or the connection's
    opening) are refused (408) and the connection closed"""
    http_max_header_bytes: int = Field(128 * 1024, ge=8192, le=MOST)
    """largest request line and headers together (431 above)"""
    http_keep_alive_s: int = Field(75, ge=1, le=3600)
    """an idle keep-alive connection is closed after this long (keep it above a load
    balancer's own idle timeout)"""
    http_max_connections: int = Field(0, ge=0, le=MOST)
    """beyond this many open connections a request is answered 503 at once (0: no bound)"""
    ws_ping_s: float = Field(20.0, gt=0, le=3600)
    """a WebSocket is pinged this often, and closed when its client answers no ping within as
    long (a client that stopped reading)"""


class Identity(Concern):
    """Who may call the HTTP API and the console, and with which role."""

    auth: Annotated[
        str, text("jwt, proxy or none", lambda s: s in ("", "jwt", "proxy", "none"))
    ] = ""
    """who may call the HTTP API and the console: jwt (bearer tokens), proxy (an authenticating
    proxy's headers) or none (open: development only); a worker needs one"""
    auth_jwks: str = ""
    """jwt: the signing keys, a JWKS file or https URL (cached; refetched on an unknown kid)"""
    auth_issuer: str = ""
    """jwt: the required iss claim"""
    auth_audience: str = ""
    """jwt: the required aud claim (this API's client id)"""
    auth_hs256_secret_file: FilePath = ""
    """jwt: file holding an HS256 shared secret, at least 32 bytes (instead of, or beside, the
    JWKS)"""
    auth_hs256_secret_env: EnvName = ""
    """jwt: name of the environment variable holding the HS256 shared secret"""
    auth_roles_claim: Annotated[
        str, text("a claim name or dotted path", lambda s: all(p for p in s.split(".")))
    ] = "roles"
    """jwt: the claim holding the roles; a dotted path reads nested claims (realm_access.roles)"""
    auth_trusted_proxies: str = ""
    """proxy: CIDRs whose X-Forwarded-User/-Groups are trusted (e.g. 10.0.0.0/8,127.0.0.1/32);
    any mode: whose X-Forwarded-Host/-Proto name the fleet's own origin"""
    auth_leeway_s: int = Field(30, ge=0, le=300)
    """jwt: clock skew allowed on exp, nbf and iat"""
    auth_jwks_refresh_s: int = Field(30, ge=1, le=86_400)
    """jwt: a token with an unknown kid refetches the JWKS at most this often"""
    auth_jwks_max_age_s: int = Field(300, ge=1, le=86_400)
    """jwt: the cached JWKS is refetched when older (removed keys stop)"""
    auth_viewer_role: Name = "eventfleet-viewer"
    """role that may read the console (the operator role may too)"""
    auth_operator_role: Name = "eventfleet-operator"
    """role that may replay dead letters in the console"""
    auth_admin_role: Name = "eventfleet-admin"
    """role an operator also needs to produce a raw record onto one of the fleet's own topics
    in the console (commands, events, events.stored, the dead letters, any its catalog owns)"""


class Console(Concern):
    """The operator console (/console)."""

    console_actions: bool = False
    """the console (/console) may act: re-submit dead letters, post events, produce records, reset
    idle consumer groups' offsets; off: read-only, its POSTs get 403"""
    console_sample_interval_s: int = Field(5, ge=1, le=300)
    """how often the console samples lag and throughput (the last 120 kept)"""
    trace_url_template: Annotated[
        str,
        text(
            "an http(s) URL holding {trace_id}",
            lambda s: not s or (s.startswith(("http://", "https://")) and "{trace_id}" in s),
        ),
    ] = ""
    """the trace UI's page of one trace, e.g. http://jaeger:16686/trace/{trace_id}: the console's
    timeline links each event's trace id there"""


class PersonalData(Concern):
    """Personal fields: sealed with a key per subject, the keys wrapped by the master key."""

    personal_data_encryption: bool = True
    """seal the personal fields domains declare (AES-GCM, one key per subject) before anything is
    produced; off: new events carry them in plain text (sealed ones still open)"""
    master_key_file: FilePath = ""
    """file holding the master key (32 bytes, base64) that wraps the data keys"""
    master_key_env: EnvName = ""
    """name of the environment variable holding the master key (base64)"""
    key_cache_ttl_s: int = Field(60, ge=1, le=3600)
    """how long a process keeps a data key to open values: an erasure is unreadable everywhere
    after this (sealing asks the key store every time)"""
