"""A test identity provider: real keys made with cryptography, a JWKS file, signed tokens.

Every test fleet (``tests.fleet``) runs with ``EVENTFLEET_AUTH=jwt`` against this issuer and
sends a token on every request, so no test passes only because the door was open.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.eventfleet.test"
AUDIENCE = "eventfleet"
VIEWER = "eventfleet-viewer"
OPERATOR = "eventfleet-operator"
TESTER = "tester"
"""The principal test fleets' requests carry unless a test says otherwise."""
TESTER_ROLES = (OPERATOR, VIEWER)


REUSE_S = 600
"""How long a plain token is given again (it is valid for an hour)."""


class Issuer:
    """Signing keys by kid, the JWKS of their public halves, and tokens signed with them."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="eventfleet-issuer-"))
        self.keys: dict[str, Any] = {}
        self._signed: dict[tuple[str | None, tuple[str, ...], str], tuple[Any, float, str]] = {}
        """Plain tokens by (principal, roles, kid): the key that signed each, when, the token."""
        self.add_key("rsa-1")
        self.default_kid = "rsa-1"

    def add_key(self, kid: str, *, kind: str = "rsa") -> None:
        if kind == "rsa":
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.write_jwks()

    def remove_key(self, kid: str) -> None:
        del self.keys[kid]
        self.write_jwks()

    def jwks(self, kids: Iterable[str] | None = None) -> bytes:
        entries = []
        for kid in kids if kids is not None else self.keys:
            key = self.keys[kid]
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = orjson.loads(RSAAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "RS256"
            else:
                jwk = orjson.loads(ECAlgorithm.to_jwk(key.public_key()))
            entries.append({**jwk, "kid": kid, "use": "sig"})
        return orjson.dumps({"keys": entries})

    @property
    def jwks_path(self) -> Path:
        return self.directory / "jwks.json"

    def write_jwks(self) -> None:
        self.jwks_path.write_bytes(self.jwks())

    def env(self) -> dict[str, str]:
        """The settings of a fleet trusting this issuer."""
        return {
            "EVENTFLEET_AUTH": "jwt",
            "EVENTFLEET_AUTH_JWKS": str(self.jwks_path),
            "EVENTFLEET_AUTH_ISSUER": ISSUER,
            "EVENTFLEET_AUTH_AUDIENCE": AUDIENCE,
        }

    def claims(self, sub: str | None, roles: Sequence[str], **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 3600,
            "roles": list(roles),
        }  # fmt: skip
        if sub is not None:
            claims["sub"] = sub
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        sub: str | None = TESTER,
        roles: Sequence[str] = TESTER_ROLES,
        *,
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token signed by key ``kid`` (the default key); a claim given as None is left out.

        A plain one (no claims, headers or kid of the caller's) is signed once per principal
        and key and given again for ten minutes of its hour: an RSA signature per request was
        a fifth of the test processes' CPU."""
        kid = kid or self.default_kid
        key = self.keys[kid]
        plain = not claims and not headers
        if plain:
            cached = self._signed.get((sub, tuple(roles), kid))
            if cached is not None and cached[0] is key and time.time() < cached[1] + REUSE_S:
                return cached[2]
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        signed = jwt.encode(
            self.claims(sub, roles, **claims),
            key,
            algorithm=algorithm,
            headers={"kid": kid, **(headers or {})},
        )
        if plain:
            self._signed[(sub, tuple(roles), kid)] = (key, time.time(), signed)
        return signed


_DEFAULT: Issuer | None = None


def shared_issuer() -> Issuer:
    """The issuer every test fleet of this process trusts (made once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Issuer()
    return _DEFAULT


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
