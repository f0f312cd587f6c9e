"""Secrets: read by reference (a file or an environment variable), never printed, masked in text.

Every message and log line that may carry a connection string goes through ``mask_url`` or
``redact``: a password in a URL becomes ``***``, and so does any resolved secret value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

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


class Secret:
    """A secret value: its repr and str never show it; ``reveal()`` hands it to a driver."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
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


def redact(text: str, *secrets: Secret | str | None) -> str:
    """``text`` with URL passwords masked and every given secret value replaced by ``***``."""
    result = mask_url(text)
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            result = result.replace(value, MASK)
    return result


def read_secret(
    what: str,
    *,
    file: str = "",
    env: str = "",
    file_variable: str,
    env_variable: str,
    environ: Mapping[str, str] | None = None,
) -> Secret | None:
    """The secret named by a file path or an environment variable's name; None if neither is set.

    ``file_variable`` and ``env_variable`` are the settings' own names, so an error names the
    setting to fix -- and never the secret.
    """
    environ = os.environ if environ is None else environ
    if file and env:
        raise ConfigError(
            f"{file_variable} and {env_variable} both name the {what}; set only one of them."
        )
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ConfigError(
                f"{file_variable}={file!r}: the {what} file cannot be read ({e.strerror}); "
                "mount it there or fix the path."
            ) from None
        if not value:
            raise ConfigError(f"{file_variable}={file!r}: the {what} file is empty.")
        return Secret(value)
    if env:
        value = environ.get(env, "")
        if not value:
            raise ConfigError(
                f"{env_variable}={env!r}: that environment variable is not set or empty; "
                f"set it to the {what} (e.g. from a Kubernetes Secret)."
            )
        return Secret(value)
    return None
