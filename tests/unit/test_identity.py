"""The verifier alone: every hostile token refused with its reason, keys pinned, JWKS refetch bounded."""

from __future__ import annotations

from typing import Any

import jwt
import orjson
import pytest

from tests.hostile_tokens import hostile, hs256_with_public_key
from tests.tokens import AUDIENCE, ISSUER, Issuer
from topics.envelope import Actor
from topics.errors import ConfigError, Unauthenticated
from workers.http.console.html import page
from workers.roles.deadletter import MAX_OPERATOR
from workers.runtime.door.auth import make_authenticator
from workers.runtime.door.identity import (
    Authenticator,
    Credentials,
    JwtAuthenticator,
    KeySet,
    ProxyAuthenticator,
    parse_jwks,
    trusted_networks,
)
from workers.runtime.settings import Settings
from workers.secrets import read_secrets


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    issuer = Issuer()
    issuer.add_key("ec-1", kind="ec")
    return issuer


async def verifier(issuer: Issuer, *, secret: bytes | None = None) -> JwtAuthenticator:
    jwks = issuer.jwks()

    async def load() -> bytes:
        return jwks

    keys = KeySet(load, refresh_s=60)
    await keys.start()
    return JwtAuthenticator(
        keys=keys, secret=secret, issuer=ISSUER, audience=AUDIENCE,
        roles_claim="realm_access.roles", leeway_s=30,
    )  # fmt: skip


async def test_every_hostile_token_is_refused_with_its_reason(issuer: Issuer) -> None:
    auth = await verifier(issuer)
    for reason, headers in hostile(issuer).items():
        with pytest.raises(Unauthenticated) as refused:
            await auth.authenticate(Credentials(authorization=headers))
        assert refused.value.reason == reason, (reason, str(refused.value))


async def test_hs256_signed_with_the_rsa_public_key_is_refused_even_with_a_secret_set(
    issuer: Issuer,
) -> None:
    for secret in (None, b"s" * 40):
        auth = await verifier(issuer, secret=secret)
        token = hs256_with_public_key(issuer, issuer.claims("eve", ["moderator"]))
        with pytest.raises(Unauthenticated) as refused:
            await auth.authenticate(Credentials(authorization=(f"Bearer {token}",)))
        assert refused.value.reason in ("algorithm_not_allowed", "bad_signature")


async def test_a_token_naming_another_algorithm_than_its_key_is_refused(issuer: Issuer) -> None:
    auth = await verifier(issuer)
    # An RS256 key asked to verify a token claiming ES256 (a valid ES256 signature by ec-1).
    token = jwt.encode(
        issuer.claims("eve", []), issuer.keys["ec-1"], algorithm="ES256",
        headers={"kid": "rsa-1"},
    )  # fmt: skip
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticate(Credentials(authorization=(f"Bearer {token}",)))
    assert refused.value.reason == "algorithm_not_allowed"


async def test_valid_tokens_name_their_subject_and_nested_roles(issuer: Issuer) -> None:
    auth = await verifier(issuer)
    for kid in ("rsa-1", "ec-1"):
        token = issuer.token("alice", [], kid=kid, realm_access={"roles": ["moderator", "x"]})
        actor = await auth.authenticate(Credentials(authorization=(f"Bearer {token}",)))
        assert actor == Actor("alice", ("moderator", "x"))


async def test_a_subject_the_operator_trail_could_not_print_is_refused(issuer: Issuer) -> None:
    auth = await verifier(issuer)
    longest = "a" * MAX_OPERATOR
    token = issuer.token(longest, [])
    assert await auth.authenticate(Credentials(authorization=(f"Bearer {token}",))) == Actor(
        longest, ()
    )
    for sub in ("a" * (MAX_OPERATOR + 1), "alice\nbob", "eve\x1b[2J"):
        token = issuer.token(sub, [])
        with pytest.raises(Unauthenticated, match="printable characters") as refused:
            await auth.authenticate(Credentials(authorization=(f"Bearer {token}",)))
        assert refused.value.reason == "missing_subject"


async def test_hs256_tokens_verify_only_with_the_secret_file() -> None:
    secret = b"k" * 48
    auth = JwtAuthenticator(
        keys=None, secret=secret, issuer=ISSUER, audience=AUDIENCE, roles_claim="roles",
        leeway_s=0,
    )  # fmt: skip
    claims = Issuer.claims(Issuer.__new__(Issuer), "svc", ["r"])
    good = jwt.encode(claims, secret, algorithm="HS256")
    assert (
        await auth.authenticate(Credentials(authorization=(f"Bearer {good}",)))
    ).principal == "svc"
    bad = jwt.encode(claims, b"x" * 48, algorithm="HS256")
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticate(Credentials(authorization=(f"Bearer {bad}",)))
    assert refused.value.reason == "bad_signature"


async def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_interval(issuer: Issuer) -> None:
    now = [0.0]
    served = [Issuer().jwks()]  # first: a key set without the issuer's keys

    async def load() -> bytes:
        return served[0]

    keys = KeySet(load, refresh_s=10, max_age_s=1000, clock=lambda: now[0])
    await keys.start()
    assert await keys.key("ec-1") is None  # within the interval: no refetch
    served[0] = issuer.jwks()
    for _ in range(50):
        assert await keys.key("ec-1") is None
    assert keys.fetches == 1
    now[0] = 10.0
    assert await keys.key("ec-1") is not None
    assert await keys.key("nope") is None and keys.fetches == 2  # rate bound again
    now[0] = 2000.0  # too old: refetched even for a known kid, so removed keys stop
    served[0] = issuer.jwks(["rsa-1"])
    assert await keys.key("ec-1") is None and keys.fetches == 3


@pytest.mark.parametrize(
    ("jwks", "words"),
    [
        (b"not json", "not a JWKS"),
        (orjson.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}), "kty 'oct'"),
        (orjson.dumps({"keys": [{"kty": "RSA", "alg": "HS256", "n": "x", "e": "AQAB"}]}), "HS256"),
    ],
)
def test_a_key_set_that_could_confuse_algorithms_is_refused(jwks: bytes, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_jwks(jwks)


async def test_proxy_headers_count_only_from_trusted_addresses() -> None:
    auth = ProxyAuthenticator(trusted_networks("10.0.0.0/8, 127.0.0.1/32"))
    trusted = Credentials(forwarded_user=("alice",), forwarded_groups=("a,b",), peer="10.1.2.3")
    assert await auth.authenticate(trusted) == Actor("alice", ("a", "b"))
    for peer, users, reason in (
        ("192.168.1.1", ("alice",), "untrusted_proxy"),
        (None, ("alice",), "untrusted_proxy"),
        ("10.1.2.3", (), "missing_identity"),
        ("10.1.2.3", ("alice", "bob"), "missing_identity"),
        ("10.1.2.3", ("alice\r\nbob",), "missing_identity"),
        ("10.1.2.3", ("a" * (MAX_OPERATOR + 1),), "missing_identity"),
        ("10.1.2.3", ("pm:order_lifecycle",), "reserved_principal"),
    ):
        with pytest.raises(Unauthenticated) as refused:
            await auth.authenticate(Credentials(forwarded_user=users, peer=peer))
        assert refused.value.reason == reason
    with pytest.raises(ConfigError, match="no CIDR"):
        trusted_networks("10.0.0.1/8")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "EVENTFLEET_AUTH is not set"),
        ({"EVENTFLEET_AUTH": "jwt"}, "EVENTFLEET_AUTH_JWKS or EVENTFLEET_AUTH_HS256_SECRET_FILE"),
        ({"EVENTFLEET_AUTH": "jwt", "EVENTFLEET_AUTH_JWKS": "/k.json"}, "EVENTFLEET_AUTH_ISSUER"),
        ({"EVENTFLEET_AUTH": "proxy"}, "EVENTFLEET_AUTH_TRUSTED_PROXIES"),
    ],
)
async def test_a_worker_needs_a_choice_that_works(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        await worker_authenticator(env)


async def worker_authenticator(env: dict[str, str]) -> Authenticator:
    """What ``eventfleet worker`` makes of ``env``: its secrets read once, then the door."""
    settings = Settings.from_env(env)
    return await make_authenticator(settings, read_secrets(settings, env), required=True)


async def test_none_is_open_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    auth = await worker_authenticator({"EVENTFLEET_AUTH": "none"})
    assert auth.mode == "none" and "open to anyone" in caplog.text
    assert await auth.authenticate(Credentials()) == Actor("anonymous", ())
    assert 'id="auth-none"' in page("x", "", actions=False, auth="none")
    assert 'id="auth-none"' not in page("x", "", actions=False, auth="jwt")


async def test_a_key_set_that_cannot_be_read_stops_the_start(tmp_path: Any) -> None:
    missing = {"EVENTFLEET_AUTH": "jwt", "EVENTFLEET_AUTH_ISSUER": ISSUER,
               "EVENTFLEET_AUTH_AUDIENCE": AUDIENCE}  # fmt: skip
    for jwks, words in ((str(tmp_path / "nope.json"), "could not be read"),
                        ("http://example.com/jwks", "https")):  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            await worker_authenticator({**missing, "EVENTFLEET_AUTH_JWKS": jwks})
    short = tmp_path / "secret"
    short.write_bytes(b"too short")
    with pytest.raises(ConfigError, match="at least 32"):
        await worker_authenticator({**missing, "EVENTFLEET_AUTH_HS256_SECRET_FILE": str(short)})


async def test_a_remembered_token_is_verified_again_once_its_key_is_gone(issuer: Issuer) -> None:
    now = [0.0]
    served = [issuer.jwks()]

    async def load() -> bytes:
        return served[0]

    keys = KeySet(load, refresh_s=1, max_age_s=10, clock=lambda: now[0])
    await keys.start()
    auth = JwtAuthenticator(
        keys=keys, secret=None, issuer=ISSUER, audience=AUDIENCE, roles_claim="roles", leeway_s=0
    )
    token = Credentials(authorization=(f"Bearer {issuer.token('ann', [], kid='ec-1')}",))
    assert (await auth.authenticate(token)).principal == "ann"
    assert (await auth.authenticate(token)).principal == "ann"  # remembered
    served[0] = issuer.jwks(["rsa-1"])  # ec-1 removed from the key set
    now[0] = 11.0  # the cache is older than max_age: refetched on the next lookup
    await keys.key("rsa-1")
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticate(token)
    assert refused.value.reason == "unknown_key"
