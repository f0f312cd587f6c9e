"""Secrets: read once at start by one reader, never printed, masked in text.

Every secret the fleet reads is declared here and read by ``read_secret`` from one place: a file
(``EVENTFLEET_<NAME>_FILE``, e.g. a mounted Kubernetes Secret), the variable another one names
(``EVENTFLEET_<NAME>_ENV``), or the file ``EVENTFLEET_<NAME>`` in ``EVENTFLEET_SECRETS_DIR``
(pydantic-settings' secrets directory: a whole Secret mounted there); a connection string, which
may carry a password, is taken plainly as well. Two places at once are refused, naming both.
The connection strings are read with the settings (``Settings.from_env``), the others by
``read_secrets`` into ``Secrets``, once per process: nothing below reads a secret again. Text
that may carry a secret goes through ``mask_url`` or ``redact``: it shows ``***`` instead.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_settings import BaseSettings, SecretsSettingsSource, SettingsError

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


class Secret(pydantic.Secret[V]):
    """A secret value (pydantic's ``Secret``): repr and str never show it; ``reveal()`` does."""

    def reveal(self) -> V:
        return self.get_secret_value()


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
    def plain_variable(self) -> str:
        return f"EVENTFLEET_{self.name.upper()}"

    @property
    def file_variable(self) -> str:
        return f"{self.plain_variable}_FILE"

    @property
    def env_variable(self) -> str:
        return f"{self.plain_variable}_ENV"

    def source(self, *, file: str, env: str, directory: str = "") -> str:
        """Where the secret was read, for a message: the setting and its value (a path, a
        variable's name or the secrets directory, never the secret)."""
        if file or env:
            return f"{self.file_variable}={file!r}" if file else f"{self.env_variable}={env!r}"
        return f"EVENTFLEET_SECRETS_DIR={directory!r} (its file {self.plain_variable})"


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
    held: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """The one reader: the secret in the file ``file`` names, in the variable ``env`` names,
    ``held`` (its file in the secrets directory) or ``plain`` itself; None when none is given.
    Its end of line is dropped.

    Two ways at once, a file that cannot be read or is empty, a variable unset or empty: a
    ConfigError naming the setting to fix, and never the secret.
    """
    ways = {
        setting.plain_variable: plain,
        setting.file_variable: file,
        setting.env_variable: env,
        "EVENTFLEET_SECRETS_DIR": held is not None,
    }
    given = [variable for variable, value in ways.items() if value]
    what = setting.what
    if len(given) > 1:
        named = f"{', '.join(given[:-1])} and {given[-1]}"
        every = "both" if len(given) == 2 else "all"
        raise ConfigError(f"{named} {every} name the {what}; set only one of them.")
    if file:
        where = f"{setting.file_variable}={file!r}"
        try:
            value = Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise ConfigError(
                f"{where}: the {what} file cannot be read ({e.strerror}); mount it there or fix "
                "the path."
            ) from None
        if not value:
            raise ConfigError(f"{where}: the {what} file is empty; write the {what} into it.")
        return value
    if env:
        found = (os.environ if environ is None else environ).get(env, "")
        if not found:
            raise ConfigError(
                f"{setting.env_variable}={env!r}: that environment variable is not set or empty; "
                f"set it to the {what} (e.g. from a Kubernetes Secret)."
            )
        return found.encode()
    if held == "":
        raise ConfigError(
            f"EVENTFLEET_SECRETS_DIR: its file {setting.plain_variable} is empty; write the "
            f"{what} into it."
        )
    found = held or plain
    return found.encode() if found else None


def secret_text(setting: SecretSetting, value: bytes, source: str) -> str:
    """A secret that is text (a password, a URL), decoded; ``source`` names where it came from."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the {setting.what} is not UTF-8 text.") from None


class SecretReferences(Protocol):
    """Where the secrets are: ``secrets_dir``, and each secret's ``<name>_file`` and
    ``<name>_env`` (the settings' fields of those names)."""

    @property
    def secrets_dir(self) -> str: ...


def read_each(
    places: SecretReferences,
    secrets: Sequence[SecretSetting],
    environ: Mapping[str, str] | None = None,
    plain: Mapping[str, object] | None = None,
) -> dict[str, tuple[bytes, str]]:
    """Each of ``secrets`` given in ``places`` (or ``plain``), read by ``read_secret``, with
    where it was read (for a message)."""
    directory, plain = places.secrets_dir, plain or {}
    held = _held(secrets, directory)
    found = {}
    for secret in secrets:
        file = str(getattr(places, f"{secret.name}_file"))
        env = str(getattr(places, f"{secret.name}_env"))
        value = read_secret(
            secret,
            file=file,
            env=env,
            plain=str(plain.get(secret.name, "")),
            held=held.get(secret.name),
            environ=environ,
        )
        if value is not None:
            found[secret.name] = (value, secret.source(file=file, env=env, directory=directory))
    return found


def _held(secrets: Sequence[SecretSetting], directory: str) -> dict[str, str]:
    """The ``secrets`` in ``directory``, read by pydantic-settings' secrets source: the file
    ``EVENTFLEET_<NAME>`` (any case) holds secret ``<name>``."""
    if not directory:
        return {}
    if not Path(directory).is_dir():
        raise ConfigError(
            f"EVENTFLEET_SECRETS_DIR={directory!r} is no directory; mount the secrets there."
        )
    fields = {s.name: (str | None, None) for s in secrets}
    # Each field is (str | None, None): a union pydantic takes, typed by mypy as a special form.
    files = pydantic.create_model(  # type: ignore[call-overload]  # a union as a field type
        "Files", __base__=BaseSettings, **fields
    )
    try:
        return SecretsSettingsSource(files, secrets_dir=directory, env_prefix="EVENTFLEET_")()
    except SettingsError as e:  # a file that cannot be read, or is not text: named, never shown
        raise ConfigError(
            f"EVENTFLEET_SECRETS_DIR={directory!r}: {e} ({e.__cause__}); each secret there must "
            "be readable UTF-8 text."
        ) from None


def _hs256(secret: Secret[bytes]) -> Secret[bytes]:
    value = secret.reveal().strip()
    if len(value) < HS256_MIN_BYTES:
        raise ValueError(
            f"the HS256 secret holds {len(value)} bytes; it needs at least {HS256_MIN_BYTES} "
            "random bytes (`head -c 32 /dev/urandom | base64`)."
        )
    return Secret(value)


def _master_key(value: object) -> bytes:
    if not isinstance(value, str | bytes):
        raise ValueError("the master key is text: 32 bytes in base64.")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(
            f"the master key is not {MASTER_KEY_BYTES} bytes in base64; make one with "
            "`head -c 32 /dev/urandom | base64`."
        )
    return key


class Secrets(BaseModel):
    """The secrets of one process, read and checked once at its start (``read_secrets``)."""

    model_config = ConfigDict(frozen=True)

    auth_hs256_secret: Annotated[Secret[bytes], AfterValidator(_hs256)] | None = None
    """The HS256 shared secret (at least 32 bytes), or None: no HS256 token is accepted."""
    kafka_sasl_password: Secret[str] | None = None
    master_key: Annotated[Secret[bytes], BeforeValidator(_master_key)] | None = None
    """The 32-byte master key that wraps the data keys, or None."""


def read_secrets(places: SecretReferences, environ: Mapping[str, str] | None = None) -> Secrets:
    """Every secret of ``SECRETS`` read where ``places`` say, checked and decoded; a
    ConfigError names the first one that is missing or malformed, never its value."""
    found = read_each(places, SECRETS, environ)
    try:
        return Secrets.model_validate({name: value for name, (value, _) in found.items()})
    except ValidationError as e:
        error = e.errors(include_input=False)[0]
        name = str(error["loc"][0])
        what = next(s.what for s in SECRETS if s.name == name)
        why = error["ctx"]["error"] if "ctx" in error else f"the {what} is not UTF-8 text."
        raise ConfigError(f"{found[name][1]}: {why}") from None
