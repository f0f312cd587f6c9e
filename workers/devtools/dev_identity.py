"""``eventfleet dev``'s own identity provider: a signing key made per run and ready tokens.

Dev runs with ``EVENTFLEET_AUTH=jwt`` like a deployment, unless the environment chooses
otherwise: it makes an EC P-256 key in its run directory, publishes the public half as a JWKS
file, and signs tokens with it (the banner prints one, valid 24 hours, holding the console's
roles and ``moderator``). The key dies with the run directory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from workers.runtime.settings import Settings

DEV_ISSUER = "eventfleet-dev"
DEV_AUDIENCE = "eventfleet-dev"
DEV_PRINCIPAL = "dev"
TOKEN_TTL_S = 24 * 3600
_KID = "eventfleet-dev-1"


class DevIdentity:
    """A per-run signing key, its JWKS file, and tokens for any principal."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.jwks_path = directory / "dev-jwks.json"
        jwk = orjson.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.jwks_path.write_bytes(
            orjson.dumps({"keys": [{**jwk, "kid": _KID, "use": "sig", "alg": "ES256"}]})
        )
        self._roles = (settings.auth_viewer_role, settings.auth_operator_role, "moderator")

    def settings(self, settings: Settings) -> Settings:
        """``settings`` trusting this key (every auth setting dev chose, none the user set)."""
        return settings.model_copy(
            update={"auth": "jwt", "auth_jwks": str(self.jwks_path), "auth_issuer": DEV_ISSUER,
                    "auth_audience": DEV_AUDIENCE}
        )  # fmt: skip

    def token(self, sub: str = DEV_PRINCIPAL, roles: Sequence[str] | None = None) -> str:
        """A token for ``sub`` (default roles: viewer, operator and moderator), valid 24 hours."""
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": sub, "iat": now, "nbf": now,
            "exp": now + TOKEN_TTL_S, "roles": list(self._roles if roles is None else roles),
        }  # fmt: skip
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": _KID})


def dev_identity(directory: Path, settings: Settings) -> DevIdentity | None:
    """Dev's identity provider, unless EVENTFLEET_AUTH was set (then the user's choice holds)."""
    if "auth" in settings.explicit:
        return None
    return DevIdentity(directory, settings)
