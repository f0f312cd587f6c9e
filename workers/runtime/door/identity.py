"""Who is calling: verify a bearer token (JWT) or a trusted proxy's headers into an ``Actor``.

Transport-free: the HTTP middleware (``workers.runtime.door.auth``) hands in the request's
credentials and gets an ``Actor`` or ``Unauthenticated`` with one short reason. Keys come from
a JWKS (fetched by an injected loader, cached, refetched on an unknown ``kid`` at most once per
``refresh_s``) and optionally an HS256 secret file. The algorithm is pinned by the key that
verifies: RSA keys RS256, EC keys ES256/ES384, OKP keys EdDSA, the secret HS256; a token whose
header names another algorithm (``none``, or HS256 against a public key) is refused before any
signature check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import jwt
import orjson
from jwt.algorithms import AllowedPublicKeys, get_default_algorithms

from snapshot_rules.personal import SUBJECT_MAX, nameable
from snapshot_rules.process import PRINCIPAL_PREFIX
from topics.envelope import MAX_ACTOR_ROLES, Actor
from topics.errors import ConfigError, Unauthenticated
from topics.jsonvalue import Json, JsonObject

log = logging.getLogger(__name__)

VERIFIED_FOR_S = 60.0
"""A verified token is believed this long (at most until its exp) without verifying it again."""
VERIFIED_TOKENS = 10_000
"""Tokens remembered as verified, the least recently used forgotten first."""
MAX_TOKEN_BYTES = 16 * 1024
"""A bigger bearer token is refused unread (real ID-provider tokens are a few KB)."""
ANONYMOUS = Actor("anonymous", ())
"""Who calls a fleet running with EVENTFLEET_AUTH=none."""

_ALGORITHMS_BY_KTY = {"RSA": ("RS256",), "EC": ("ES256", "ES384"), "OKP": ("EdDSA",)}
_EC_ALGORITHM = {"P-256": "ES256", "P-384": "ES384"}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents: every Authorization header, a session cookie, proxy headers."""

    authorization: Sequence[str] = ()
    cookie_token: str | None = None
    forwarded_user: Sequence[str] = ()
    forwarded_groups: Sequence[str] = ()
    peer: str | None = None


@dataclass(frozen=True, slots=True)
class Key:
    """One verification key with the one algorithm it may verify."""

    kid: str | None
    algorithm: str
    key: AllowedPublicKeys | str | bytes
    """A JWKS key parsed by PyJWT (a JWKS publishes public keys), or the shared HS256 secret."""


class Authenticator:
    """The base: ``authenticate`` returns the caller or raises ``Unauthenticated``."""

    mode = "none"
    challenge = 'Bearer realm="eventfleet"'

    async def authenticate(self, credentials: Credentials) -> Actor:
        return (await self.identify(credentials))[0]

    async def identify(self, credentials: Credentials) -> tuple[Actor, float | None]:
        """The caller, and until when (seconds since the epoch) its credential is accepted:
        None when it does not expire (the proxy's headers, an open door)."""
        return ANONYMOUS, None


def refuse(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(reason, message)


def not_reserved(principal: str) -> None:
    """Refuse a credential naming a process manager's own principal (``pm:<name>``): its
    commands' ids are scoped to it, and no caller may send (or pre-empt) them."""
    if principal.startswith(PRINCIPAL_PREFIX):
        raise refuse(
            "reserved_principal",
            f"principals starting with {PRINCIPAL_PREFIX!r} are the process managers' own; "
            "issue this caller another subject.",
        )


# --- keys -------------------------------------------------------------------------------------


def parse_jwks(raw: bytes) -> dict[str | None, Key]:
    """The keys of a JWKS document by kid; a key without ``kid`` is stored under None.

    Raises ConfigError naming what is wrong: the fleet must not run on a key set it misread.
    """
    try:
        document = orjson.loads(raw)
        entries = document["keys"]
        assert isinstance(entries, list)
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise ConfigError('EVENTFLEET_AUTH_JWKS is not a JWKS ({"keys": [...]})') from None
    keys: dict[str | None, Key] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        key = _jwk(entry)
        keys[key.kid] = key
    return keys


def _jwk(entry: JsonObject) -> Key:
    kty, kid = entry.get("kty"), entry.get("kid")
    if kty not in _ALGORITHMS_BY_KTY:  # "oct" (a shared secret) only from the secret file
        raise ConfigError(f"EVENTFLEET_AUTH_JWKS: key {kid!r} has kty {kty!r}; use RSA, EC or OKP")
    algorithm = (
        _EC_ALGORITHM.get(entry.get("crv", ""), "ES256")
        if kty == "EC"
        else (_ALGORITHMS_BY_KTY[kty][0])
    )
    declared = entry.get("alg")
    if declared is not None:
        if declared not in _ALGORITHMS_BY_KTY[kty]:
            raise ConfigError(
                f"EVENTFLEET_AUTH_JWKS: key {kid!r} ({kty}) declares alg {declared!r}; a {kty} "
                f"key verifies {' or '.join(_ALGORITHMS_BY_KTY[kty])} only"
            )
        algorithm = declared
    if "d" in entry:
        raise ConfigError(
            f"EVENTFLEET_AUTH_JWKS: key {kid!r} is a private key; publish public keys only"
        )
    try:
        key = get_default_algorithms()[algorithm].from_jwk(entry)
    except (jwt.InvalidKeyError, ValueError, KeyError) as e:
        raise ConfigError(f"EVENTFLEET_AUTH_JWKS: key {kid!r} cannot be read: {e}") from None
    return Key(kid if isinstance(kid, str) else None, algorithm, key)


class KeySet:
    """A JWKS, cached; an unknown kid refetches it, at most once per ``refresh_s``."""

    def __init__(
        self,
        load: Callable[[], Awaitable[bytes]],
        *,
        refresh_s: float,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._keys: dict[str | None, Key] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.generation = 0

    async def start(self) -> None:
        """The first load: a key set that cannot be read stops the process at start."""
        await self._refresh()

    async def _refresh(self) -> None:
        self.fetches += 1
        self._loaded_at = self._clock()
        keys = parse_jwks(await self._load())
        if keys.keys() != self._keys.keys():
            self.generation += 1  # tokens verified by an earlier key set are verified again
        self._keys = keys

    async def key(self, kid: str | None) -> Key | None:
        """The key named ``kid``: refetched when unknown (at most once per ``refresh_s``) and
        when the cache is older than ``max_age_s`` (so a removed key stops verifying)."""
        found = self._lookup(kid)
        if found is not None and not self._older_than(self._max_age_s):
            return found
        async with self._lock:  # one refetch at a time; the others see its result
            found = self._lookup(kid)
            stale = self._older_than(self._max_age_s)
            if stale or (found is None and self._older_than(self._refresh_s)):
                try:
                    await self._refresh()
                except (ConfigError, OSError, TimeoutError) as e:
                    # Keep the keys we had: an identity provider's blip must not lock out
                    # every caller; the next lookup after refresh_s tries again.
                    log.warning("the JWKS could not be refetched (%s); keeping the cached keys", e)
                    return found
                found = self._lookup(kid)
        return found

    async def current(self) -> int:
        """The key set's generation, after refetching it if older than ``max_age_s``."""
        if self._older_than(self._max_age_s):
            await self.key(None)  # refetches under the lock (None: no kid is looked up)
        return self.generation

    def _older_than(self, seconds: float) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= seconds

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))  # a single key needs no kid
        return self._keys.get(kid)


# --- JWT --------------------------------------------------------------------------------------


class JwtAuthenticator(Authenticator):
    """Bearer tokens signed by the JWKS (or the HS256 secret), with iss, aud, exp and nbf
    checked."""

    mode = "jwt"

    def __init__(
        self,
        *,
        keys: KeySet | None,
        secret: bytes | None,
        issuer: str,
        audience: str,
        roles_claim: str,
        leeway_s: int,
    ) -> None:
        self._keys = keys
        self._secret = None if secret is None else Key(None, "HS256", secret)
        self._issuer = issuer
        self._audience = audience
        self._roles_path = roles_claim.split(".")
        self._leeway_s = leeway_s
        self._verified: OrderedDict[str, tuple[Actor, float, int, float]] = OrderedDict()

    async def identify(self, credentials: Credentials) -> tuple[Actor, float | None]:
        """The token's principal, and its ``exp`` plus the leeway: the moment the door
        refuses it (a live connection opened with it ends then)."""
        token = bearer_token(credentials)
        generation = await self._keys.current() if self._keys is not None else 0
        cached = self._verified.get(token)
        if cached is not None:
            actor, until, verified_by, expires = cached
            if verified_by == generation and time.time() < until:
                self._verified.move_to_end(token)
                return actor, expires + self._leeway_s
            del self._verified[token]
        actor, expires = await self._verify(token)
        # A client sends the same token for its lifetime: verify it once, for a while (never
        # past its exp, and again once the key set changed, so a removed key stops at once).
        until = min(expires, time.time() + VERIFIED_FOR_S)
        self._verified[token] = (actor, until, generation, expires)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return actor, expires + self._leeway_s

    async def _verify(self, token: str) -> tuple[Actor, float]:
        header = _header(token)
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise refuse("algorithm_not_allowed", "the token is unsigned (alg none); sign it.")
        if kid is not None and not isinstance(kid, str):
            raise refuse("malformed_token", "the token's kid is not a string.")
        key = await self._key(algorithm, kid)
        if key.algorithm != algorithm:
            raise refuse(
                "algorithm_not_allowed",
                f"the token is signed with {algorithm} but its key verifies {key.algorithm} only.",
            )
        claims = self._decode(token, key)
        return self._actor(claims), float(claims["exp"])

    async def _key(self, algorithm: str, kid: str | None) -> Key:
        if algorithm == "HS256":
            if self._secret is None:
                raise refuse(
                    "algorithm_not_allowed",
                    "HS256 tokens are not accepted here (no EVENTFLEET_AUTH_HS256_SECRET_FILE "
                    "or _ENV).",
                )
            return self._secret
        key = None if self._keys is None else await self._keys.key(kid)
        if key is None:
            raise refuse(
                "unknown_key",
                f"no signing key {kid!r} is in the key set (EVENTFLEET_AUTH_JWKS); a rotated "
                "key is fetched at most once per EVENTFLEET_AUTH_JWKS_REFRESH_S.",
            )
        return key

    def _decode(self, token: str, key: Key) -> JsonObject:
        try:
            claims: JsonObject = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience or None,
                issuer=self._issuer or None,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": bool(self._audience)},
            )
        except jwt.ExpiredSignatureError:
            raise refuse("expired", "the token has expired; get a new one.") from None
        except jwt.ImmatureSignatureError:
            raise refuse("not_yet_valid", "the token is not valid yet (nbf).") from None
        except jwt.InvalidIssuerError:
            raise refuse("wrong_issuer", f"the token's issuer is not {self._issuer}.") from None
        except jwt.InvalidAudienceError:
            raise refuse("wrong_audience", f"the token is not for {self._audience}.") from None
        except jwt.MissingRequiredClaimError as e:
            reason = "missing_subject" if e.claim == "sub" else "missing_claim"
            raise refuse(reason, f"the token has no {e.claim} claim.") from None
        except jwt.InvalidSignatureError:
            raise refuse("bad_signature", "the token's signature does not verify.") from None
        except jwt.InvalidTokenError as e:
            raise refuse("malformed_token", f"the token is not valid: {e}.") from None
        return claims

    def _actor(self, claims: Mapping[str, Json]) -> Actor:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not nameable(subject):
            raise refuse(
                "missing_subject",
                f"the token's sub is not 1 to {SUBJECT_MAX} printable characters.",
            )
        not_reserved(subject)
        roles: Json = claims
        for part in self._roles_path:
            roles = roles.get(part) if isinstance(roles, Mapping) else None
        if isinstance(roles, str):
            roles = roles.split()  # a space-separated scope-like claim
        if not isinstance(roles, list):
            roles = []
        kept = sorted({r for r in roles if isinstance(r, str) and 0 < len(r) <= 256})
        return Actor(subject, tuple(kept[:MAX_ACTOR_ROLES]))


def bearer_token(credentials: Credentials) -> str:
    """The one bearer token of a request (header, else the console's cookie)."""
    headers = credentials.authorization
    if len(headers) > 1:
        raise refuse("multiple_authorization_headers", "send one Authorization header.")
    if headers:
        scheme, _, token = headers[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise refuse("malformed_token", "send Authorization: Bearer <token>.")
        token = token.strip()
    elif credentials.cookie_token:
        token = credentials.cookie_token
    else:
        raise refuse(
            "missing_token",
            "send Authorization: Bearer <token> (a browser on a live route: ?ticket= from POST "
            "/v1/tickets).",
        )
    if len(token) > MAX_TOKEN_BYTES:
        raise refuse("token_too_large", f"the token is over {MAX_TOKEN_BYTES} bytes.")
    return token


def _header(token: str) -> JsonObject:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise refuse("malformed_token", "the token is not a JWT.") from None
    return header


# --- proxy ------------------------------------------------------------------------------------


class ProxyAuthenticator(Authenticator):
    """Identity from an authenticating proxy (oauth2-proxy), trusted only from its addresses."""

    mode = "proxy"
    challenge = 'Proxy realm="eventfleet"'

    def __init__(self, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._trusted = tuple(trusted)

    async def identify(self, credentials: Credentials) -> tuple[Actor, float | None]:
        if not trusted_peer(credentials.peer, self._trusted):
            raise refuse(
                "untrusted_proxy",
                "this address is not a trusted proxy (EVENTFLEET_AUTH_TRUSTED_PROXIES); go "
                "through the authenticating proxy.",
            )
        users = credentials.forwarded_user
        if len(users) != 1 or not nameable(users[0].strip()):
            raise refuse(
                "missing_identity",
                "the proxy sent no single X-Forwarded-User of 1 to "
                f"{SUBJECT_MAX} printable characters.",
            )
        not_reserved(users[0].strip())
        groups = sorted(
            {g.strip() for raw in credentials.forwarded_groups for g in raw.split(",") if g.strip()}
        )
        roles = tuple(g for g in groups if len(g) <= 256)[:MAX_ACTOR_ROLES]
        return Actor(users[0].strip(), roles), None


def trusted_peer(
    peer: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    """Whether the TCP peer's address lies in one of ``networks`` (no address: no)."""
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in networks)


def trusted_networks(raw: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """EVENTFLEET_AUTH_TRUSTED_PROXIES parsed; raises ConfigError naming the bad entry."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError as e:
            raise ConfigError(
                f"EVENTFLEET_AUTH_TRUSTED_PROXIES: {part!r} is no CIDR ({e})"
            ) from None
    return networks
