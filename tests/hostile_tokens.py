"""Tokens an attacker sends: unsigned, tampered, HMAC-signed with the RSA public key, and one
of every kind the verifier must refuse, by the reason it must give. The verifier's own tests
(``tests/unit/test_identity.py``) and the fleet's doors (e2e, console) refuse the same set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization

from tests.tokens import Issuer


def b64(raw: bytes) -> str:
    """Unpadded base64url, as a JWT's parts are."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], kid: str = "rsa-1") -> str:
    """A token with ``alg: none`` and no signature."""
    header = b64(orjson.dumps({"alg": "none", "typ": "JWT", "kid": kid}))
    return f"{header}.{b64(orjson.dumps(claims))}."


def hs256_with_public_key(issuer: Issuer, claims: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC keyed with the RSA public key's PEM."""
    pem = (
        issuer.keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = (
        b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}))
        + "."
        + b64(orjson.dumps(claims))
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str) -> str:
    """``token`` with roles of an operator written into its claims, its signature kept."""
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["moderator", "eventfleet-operator"]
    return f"{header}.{b64(orjson.dumps(claims))}.{signature}"


def hostile(issuer: Issuer) -> dict[str, tuple[str, ...]]:
    """Each hostile request's Authorization headers, by the reason it must be refused with."""
    now = int(time.time())
    stranger = Issuer()  # a key the JWKS does not hold
    stranger.default_kid = "rsa-1"
    return {
        "expired": (f"Bearer {issuer.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200)}",),
        "not_yet_valid": (f"Bearer {issuer.token(nbf=now + 3600)}",),
        "wrong_issuer": (f"Bearer {issuer.token(iss='https://evil.example')}",),
        "wrong_audience": (f"Bearer {issuer.token(aud='another-api')}",),
        "unknown_key": (f"Bearer {stranger.token(headers={'kid': 'stranger'})}",),
        "algorithm_not_allowed": (f"Bearer {unsigned(issuer.claims('eve', []))}",),
        "bad_signature": (f"Bearer {tampered(issuer.token())}",),
        "missing_subject": (f"Bearer {issuer.token(sub=None)}",),
        "reserved_principal": (f"Bearer {issuer.token('pm:order_lifecycle')}",),
        "token_too_large": ("Bearer " + "a" * 100_000,),
        "malformed_token": ("Bearer garbage",),
        "multiple_authorization_headers": (
            f"Bearer {issuer.token()}",
            f"Bearer {issuer.token('eve')}",
        ),
        "missing_token": (),
    }
