"""One settings object read from ``EVENTFLEET_*`` environment variables, validated at start.

Where a new setting goes: one field in its concern's model -- ``services`` (Kafka, topics,
MongoDB, Redis, NATS), ``serving`` (HTTP, identity, console, personal data) or ``roles`` (each
role's work, the process, logs and traces) -- typed, with its bounds (``Field(ge=, le=)``), its
default and a docstring. Its variable is ``EVENTFLEET_<FIELD>``; the reference
(docs/reference/configuration.md) and ``eventfleet --help`` are generated from the models, and
tests/unit/test_settings_models.py checks that every field is documented and read. A secret's
value is no setting: it is declared in ``workers.secrets``, with its ``<name>_file`` and
``<name>_env`` fields here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseEnvSettingsSource

from topics.errors import ConfigError
from workers.runtime.settings import roles, services, serving
from workers.runtime.settings.values import expected
from workers.secrets import CONNECTION_SECRETS, mask_url, read_each, secret_text

ENV_PREFIX = "EVENTFLEET_"


class Environ(PydanticBaseEnvSettingsSource):
    """pydantic-settings' source of ``EVENTFLEET_<FIELD>`` read from ``environ`` (the process's
    environment, or a ConfigMap's data): each value stripped; an empty one is not set, and an
    unknown ``EVENTFLEET_*`` variable is not read."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls, env_prefix=ENV_PREFIX)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[str | None, str, bool]:
        raw = self.environ.get(env_name(field_name))
        return (raw.strip() if raw else None), field_name, False


class Settings(
    roles.Observability,
    roles.Process,
    roles.Live,
    roles.Reads,
    roles.ProcessManagers,
    roles.Snapshots,
    roles.Appender,
    roles.Commands,
    serving.PersonalData,
    serving.Console,
    serving.Identity,
    serving.Http,
    services.Nats,
    services.Redis,
    services.Mongo,
    services.Topics,
    services.Kafka,
    BaseSettings,
):
    """Every knob of the fleet; ``EVENTFLEET_<FIELD>`` sets ``<field>``. The concerns are listed
    last first: pydantic takes the fields of the last base first (the reference's order)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", defer_build=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *_: PydanticBaseSettingsSource,
        **__: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # Settings(...) is what it is given: only from_env reads variables

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from ``EVENTFLEET_<FIELD>``; a bad value names its variable, the
        connection strings are read from their ``_FILE``, ``_ENV`` or secrets directory too."""
        environ = os.environ if environ is None else environ
        given = Environ(cls, environ)()
        settings = _validated(given, {})
        found = read_each(settings, CONNECTION_SECRETS, environ, plain=given)
        urls, sources = {}, {}
        for secret in CONNECTION_SECRETS:
            if secret.name in found and secret.name not in given:  # read from elsewhere
                value, source = found[secret.name]
                urls[secret.name] = secret_text(secret, value, source).strip()
                sources[secret.name] = f"{source}: the {secret.what} there"
        return _validated({**given, **urls}, sources) if urls else settings

    @property
    def explicit(self) -> frozenset[str]:
        """The fields set by name (``from_env``: by the environment); the others are defaults."""
        return frozenset(self.model_fields_set)

    def with_defaults(self, **values: object) -> Settings:
        """These settings with ``values`` for every field the environment did not set."""
        if unknown := values.keys() - type(self).model_fields.keys():
            raise TypeError(f"no such settings: {sorted(unknown)}")
        unset = {k: v for k, v in values.items() if k not in self.model_fields_set}
        return self.model_construct(self.model_fields_set, **{**self.__dict__, **unset})

    @property
    def claim_ttl_ms(self) -> int:
        """How long a command claim lives: longer than any request.

        A request holds it while it talks to Redis (twice) and Kafka (1.5 x its timeout at
        most); after that it cannot name anything still in flight from it.
        """
        return 2 * self.kafka_timeout_ms + 2 * self.redis_timeout_ms + 1000

    @property
    def kafka_bootstrap(self) -> list[str]:
        return urlsplit(self.kafka_url).netloc.split(",")

    def masked(self, name: str) -> str:
        """A setting's value as logs and messages may show it: URL passwords masked."""
        return mask_url(str(getattr(self, name)))

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: URLs show with their passwords masked.
        return f"Settings({', '.join(f'{k}={mask_url(repr(v))}' for k, v in self)})"

    __str__ = __repr__

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"settings do not change; model_copy(update={{{name!r}: ...}})")


def _validated(values: Mapping[str, object], sources: Mapping[str, str]) -> Settings:
    """``values`` as Settings, or the one line that names the first bad one: its variable (or
    where a connection string was read), the value given with its password masked, and what was
    expected."""
    try:
        return Settings.model_validate(values)
    except ValidationError as e:
        error = e.errors()[0]
        name = str(error["loc"][0])
        field = Settings.model_fields[name]
        why = expected(error, field)
        if name in sources:
            raise ConfigError(f"{sources[name]} is invalid: {why}.") from None
        given = mask_url(str(values[name]))
        raise ConfigError(
            f"{env_name(name)}={given!r} is invalid: {why}. Default: {field.default!r}."
        ) from None


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


OPENTELEMETRY: tuple[tuple[str, str, str], ...] = (
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OpenTelemetry (read by its SDK): the OTLP/HTTP collector spans go to "
        "(http://collector:4318); naming it turns tracing on",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        "OpenTelemetry: which traces are kept; parentbased_traceidratio with "
        "OTEL_TRACES_SAMPLER_ARG keeps that share of new traces (a caller's choice is followed)",
    ),
    ("OTEL_TRACES_SAMPLER_ARG", "", "OpenTelemetry: the sampler's argument, e.g. 0.01"),
    ("OTEL_SERVICE_NAME", "eventfleet-<role>", "OpenTelemetry: the service name spans carry"),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "",
        "OpenTelemetry: attributes of every span, k=v comma-separated (k8s.pod.name=...)",
    ),
)
"""The standard variables OpenTelemetry's SDK reads itself (``workers.tracing``); not
settings of ours, documented with them."""


def documented() -> list[tuple[str, object, str]]:
    """(variable, default, description) for every setting: the reference table and `--help`
    (a default of None, a setting left unset, is shown empty, as it is written)."""
    return [
        (
            env_name(name),
            "" if field.default is None else field.default,
            " ".join((field.description or "").split()),
        )
        for name, field in Settings.model_fields.items()
    ]
