"""``eventfleet dev``'s own identity provider: a signing key made per run and ready tokens.

Dev runs with ``EVENTFLEET_AUTH=jwt`` like a deployment, unless the environment chooses
otherwise: it makes an EC P-256 key in its run directory, publishes the public half as a JWKS
file, and signs tokens with it. The banner prints one token (valid 24 hours) for each of its
users (``DEV_USERS``): two people, ``alice`` and ``bob``, so that the chat page, the read rules
and the access rules can be tried as one and then as the other, and an operator, ``ops``, who
holds the console's roles and ``moderator`` (its token is also ``EVENTFLEET_TOKEN``). The key
dies with the run directory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from workers.runtime.settings import Settings

DEV_ISSUER = "eventfleet-dev"
DEV_AUDIENCE = "eventfleet-dev"
DEV_PRINCIPAL = "ops"
"""Whose token ``EVENTFLEET_TOKEN`` is: the operator's, with every role dev's tokens hold."""
MODERATOR = "moderator"
"""The chat room's moderator role (``ChatRules.moderator_roles``)."""
TOKEN_TTL_S = 24 * 3600
_KID = "eventfleet-dev-1"


@dataclass(frozen=True, slots=True)
class DevUser:
    """A principal dev prints a token for: its name, its roles, and what they let it do."""

    name: str
    roles: tuple[str, ...]
    can: str

    @property
    def env(self) -> str:
        """The variable of the export block that holds its token."""
        return f"EVENTFLEET_TOKEN_{self.name.upper()}"


@dataclass(frozen=True, slots=True)
class SignedUser:
    """A dev user and its token."""

    user: DevUser
    token: str


def dev_users(settings: Settings) -> tuple[DevUser, ...]:
    """alice and bob, two users who differ in whose chat messages they may change (their own)
    and in the console (alice may read it, bob may not); ops, the operator, who may also act
    in the console and moderate the chat."""
    viewer, operator = settings.auth_viewer_role, settings.auth_operator_role
    return (
        DevUser(
            "alice", (viewer,), "edits and deletes her own chat messages only; reads the console"
        ),
        DevUser("bob", (), "edits and deletes his own chat messages only; no console"),
        DevUser(
            DEV_PRINCIPAL,
            (viewer, operator, MODERATOR),
            "the console actions (replay, erase); edits and deletes any chat message",
        ),
    )


class DevIdentity:
    """A per-run signing key, its JWKS file, and tokens for any principal."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.jwks_path = directory / "dev-jwks.json"
        jwk = orjson.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.jwks_path.write_bytes(
            orjson.dumps({"keys": [{**jwk, "kid": _KID, "use": "sig", "alg": "ES256"}]})
        )
        self._users = dev_users(settings)
        self._roles = self._users[-1].roles

    def settings(self, settings: Settings) -> Settings:
        """``settings`` trusting this key (every auth setting dev chose, none the user set)."""
        return settings.model_copy(
            update={
                "auth": "jwt",
                "auth_jwks": str(self.jwks_path),
                "auth_issuer": DEV_ISSUER,
                "auth_audience": DEV_AUDIENCE,
            }
        )

    def users(self) -> tuple[SignedUser, ...]:
        """Each dev user with a fresh token of its own roles."""
        return tuple(SignedUser(u, self.token(u.name, u.roles)) for u in self._users)

    def token(self, sub: str = DEV_PRINCIPAL, roles: Sequence[str] | None = None) -> str:
        """A token for ``sub`` (default roles: the operator's, viewer, operator and moderator),
        valid 24 hours."""
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_TTL_S,
            "roles": list(self._roles if roles is None else roles),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": _KID})


def dev_identity(directory: Path, settings: Settings) -> DevIdentity | None:
    """Dev's identity provider, unless EVENTFLEET_AUTH was set (then the user's choice holds)."""
    if "auth" in settings.explicit:
        return None
    return DevIdentity(directory, settings)
