"""Secrets: read once at start by one reader, never printed, masked in text.

Every secret the fleet reads is declared in ``SECRETS`` and read by ``read_secret``, from a
file (``EVENTFLEET_<NAME>_FILE``, e.g. a mounted Kubernetes Secret) or from the environment
variable another one names (``EVENTFLEET_<NAME>_ENV``); the connection strings that may carry a
password (``EVENTFLEET_MONGO_URL``, ``_REDIS_URL``, ``_NATS_URL``) are taken plainly as well.
At most one way per secret: two are refused, naming both. The connection strings are read
with the settings (``Settings.from_env``); the others by ``read_secrets``, once per process,
into ``Secrets``, which the process hands down: nothing below reads or decodes a secret again.

Every message and log line that may carry a connection string goes through ``mask_url`` or
``redact``: a password in a URL becomes ``***``, and so does any resolved secret value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from topics.errors import ConfigError

MASK = "***"
# scheme://user:password@host -- the password is everything up to the last '@' of the netloc.
_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^\s/]*)@"
)
# key=value options that carry secrets in query strings (e.g. ?password=..., ?sentinel_password=)
_SECRET_PARAM = re.compile(
    r"(?P<key>(?:[a-z_]*password|pass|pwd|secret|token|sasl_plain_password)=)(?P<value>[^&\s]+)",
    re.IGNORECASE,
)


V = TypeVar("V", str, bytes)


class Secret(Generic[V]):
    """A secret value: its repr and str never show it; ``reveal()`` hands it to a driver."""

    __slots__ = ("_value",)
    _value: V

    def __init__(self, value: V) -> None:
        self._value = value

    def reveal(self) -> V:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def mask_url(url: str) -> str:
    """``url`` with the password of every ``scheme://user:password@`` and secret option masked."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", masked)


def redact(text: str, *secrets: Secret[str] | Secret[bytes] | str | None) -> str:
    """``text`` with URL passwords masked and every given secret value replaced by ``***``."""
    result = mask_url(text)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if value:
            result = result.replace(value, MASK)
    return result


@dataclass(frozen=True, slots=True)
class SecretSetting:
    """A secret the fleet reads, named as its settings are: ``<name>_file`` and ``<name>_env``
    (``EVENTFLEET_<NAME>_FILE``, ``EVENTFLEET_<NAME>_ENV``), and ``<name>`` itself when
    ``plain`` (a connection string, whose password ``mask_url`` hides)."""

    name: str
    what: str
    plain: bool = False

    @property
    def file_variable(self) -> str:
        return f"EVENTFLEET_{self.name.upper()}_FILE"

    @property
    def env_variable(self) -> str:
        return f"EVENTFLEET_{self.name.upper()}_ENV"

    @property
    def plain_variable(self) -> str:
        return f"EVENTFLEET_{self.name.upper()}"

    def source(self, *, file: str, env: str) -> str:
        """Where the secret was read, for a message: the setting and its value (a path or a
        variable's name, never the secret)."""
        return f"{self.file_variable}={file!r}" if file else f"{self.env_variable}={env!r}"


AUTH_HS256_SECRET = SecretSetting("auth_hs256_secret", "HS256 secret")
KAFKA_SASL_PASSWORD = SecretSetting("kafka_sasl_password", "Kafka SASL password")
MASTER_KEY = SecretSetting("master_key", "master key")
SECRETS = (AUTH_HS256_SECRET, KAFKA_SASL_PASSWORD, MASTER_KEY)
"""The secrets ``read_secrets`` reads into ``Secrets``."""
CONNECTION_SECRETS = (
    SecretSetting("mongo_url", "MongoDB connection string", plain=True),
    SecretSetting("redis_url", "Redis URL", plain=True),
    SecretSetting("nats_url", "NATS URL", plain=True),
)
"""The connection strings, which may carry a password: read with the settings."""
MASTER_KEY_BYTES = 32
HS256_MIN_BYTES = 32


def read_secret(
    setting: SecretSetting,
    *,
    file: str = "",
    env: str = "",
    plain: str = "",
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """The one reader: the secret in the file ``file`` names, in the variable ``env`` names, or
    ``plain`` itself; None when none is given. Its end of line is dropped.

    Two ways at once, a file that cannot be read or is empty, a variable unset or empty: a
    ConfigError naming the setting to fix, and never the secret.
    """
    environ = os.environ if environ is None else environ
    given = [
        variable
        for variable, value in (
            (setting.plain_variable, plain), (setting.file_variable, file),
            (setting.env_variable, env),
        )
        if value
    ]  # fmt: skip
    if len(given) > 1:
        named = f"{', '.join(given[:-1])} and {given[-1]}"
        every = "both" if len(given) == 2 else "all"
        raise ConfigError(f"{named} {every} name the {setting.what}; set only one of them.")
    if file:
        try:
            value = Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise ConfigError(
                f"{setting.file_variable}={file!r}: the {setting.what} file cannot be read "
                f"({e.strerror}); mount it there or fix the path."
            ) from None
        if not value:
            raise ConfigError(
                f"{setting.file_variable}={file!r}: the {setting.what} file is empty; write the "
                f"{setting.what} into it."
            )
        return value
    if env:
        named = environ.get(env, "")
        if not named:
            raise ConfigError(
                f"{setting.env_variable}={env!r}: that environment variable is not set or empty; "
                f"set it to the {setting.what} (e.g. from a Kubernetes Secret)."
            )
        return named.encode()
    return plain.encode() if plain else None


def secret_text(setting: SecretSetting, value: bytes, source: str) -> str:
    """A secret that is text (a password, a URL), decoded; ``source`` names where it came from."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the {setting.what} is not UTF-8 text.") from None


class SecretReferences(Protocol):
    """Where each secret of ``SECRETS`` is (the settings' ``<name>_file`` and ``<name>_env``)."""

    @property
    def auth_hs256_secret_file(self) -> str: ...
    @property
    def auth_hs256_secret_env(self) -> str: ...
    @property
    def kafka_sasl_password_file(self) -> str: ...
    @property
    def kafka_sasl_password_env(self) -> str: ...
    @property
    def master_key_file(self) -> str: ...
    @property
    def master_key_env(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secrets of one process, read and decoded once at its start (``read_secrets``)."""

    auth_hs256_secret: Secret[bytes] | None = None
    """The HS256 shared secret (at least 32 bytes), or None: no HS256 token is accepted."""
    kafka_sasl_password: Secret[str] | None = None
    master_key: Secret[bytes] | None = None
    """The 32-byte master key that wraps the data keys, or None."""


def read_secrets(references: SecretReferences, environ: Mapping[str, str] | None = None) -> Secrets:
    """Every secret of ``SECRETS`` read where ``references`` say, checked and decoded; a
    ConfigError names the first one that is missing or malformed."""
    found: dict[str, tuple[bytes, str]] = {}
    for setting in SECRETS:
        file = str(getattr(references, f"{setting.name}_file"))
        env = str(getattr(references, f"{setting.name}_env"))
        value = read_secret(setting, file=file, env=env, environ=environ)
        if value is not None:
            found[setting.name] = (value, setting.source(file=file, env=env))
    hs256 = found.get(AUTH_HS256_SECRET.name)
    password = found.get(KAFKA_SASL_PASSWORD.name)
    key = found.get(MASTER_KEY.name)
    return Secrets(
        auth_hs256_secret=None if hs256 is None else Secret(_hs256(*hs256)),
        kafka_sasl_password=(
            None if password is None else Secret(secret_text(KAFKA_SASL_PASSWORD, *password))
        ),
        master_key=None if key is None else Secret(_master_key(*key)),
    )


def _hs256(value: bytes, source: str) -> bytes:
    secret = value.strip()
    if len(secret) < HS256_MIN_BYTES:
        raise ConfigError(
            f"{source}: the HS256 secret holds {len(secret)} bytes; it needs at least "
            f"{HS256_MIN_BYTES} random bytes (`head -c 32 /dev/urandom | base64`)."
        )
    return secret


def _master_key(value: bytes, source: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(
            f"{source}: the master key is not {MASTER_KEY_BYTES} bytes in base64; make one with "
            "`head -c 32 /dev/urandom | base64`."
        )
    return key
