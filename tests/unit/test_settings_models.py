"""The settings models: every variable of the generated reference is read, every field has one;
``Settings(...)`` reads no environment; what pydantic checks is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from topics.errors import ConfigError
from workers.devtools import docs
from workers.runtime.settings import Settings, env_name

URLS = {
    "mongo": "mongodb://fleet:hunter2@m1:27017",
    "redis": "redis://r:6379/0",
    "nats": "nats://n:4222",
}
EMPTY_BY_DEFAULT = {
    # A value for each setting whose default is empty; the others are given their default.
    "operator_port": "9091", "processes": "workers.examples.domains:default_processes",
    "write_budget_principals": "importer=2000/4000", "write_budget_roles": "batch=500",
    "kafka_sasl_username": "fleet", "kafka_sasl_password_file": "/run/kafka-password",
    "kafka_sasl_password_env": "KAFKA_PASSWORD", "kafka_ssl_cafile": "/etc/ca.pem",
    "kafka_ssl_certfile": "/etc/cert.pem", "kafka_ssl_keyfile": "/etc/key.pem",
    "mongo_url_file": "<held>", "mongo_url_env": "HELD_URL", "redis_url_file": "<held>",
    "redis_url_env": "HELD_URL", "nats_url_file": "<held>", "nats_url_env": "HELD_URL",
    "allowed_origins": "https://app.example", "auth": "jwt", "auth_jwks": "https://idp/jwks",
    "auth_issuer": "https://idp", "auth_audience": "fleet", "auth_hs256_secret_file": "/run/hs",
    "auth_hs256_secret_env": "HS256", "auth_trusted_proxies": "10.0.0.0/8",
    "trace_url_template": "http://jaeger:16686/trace/{trace_id}", "master_key_file": "/run/mk",
    "master_key_env": "MASTER_KEY", "domains": "my.pkg:domains", "secrets_dir": "<dir>",
}  # fmt: skip


def reference_variables() -> list[str]:
    """The variables the configuration reference lists, as the docs generator writes it."""
    rows = docs.generate("<!-- generated: settings -->").splitlines()[2:]
    return [row.split("<code>", 1)[1].split("</code>", 1)[0].replace("<wbr>", "") for row in rows]


def test_the_reference_lists_every_field_once_and_nothing_else() -> None:
    assert reference_variables() == [env_name(name) for name in Settings.model_fields]


def test_every_variable_of_the_reference_is_read_by_the_models(tmp_path: Path) -> None:
    held = tmp_path / "url"
    fields = {env_name(name): name for name in Settings.model_fields}
    for variable in reference_variables():
        name = fields[variable]
        default = Settings.model_fields[name].default
        if default in ("", None):  # unset unless given
            assert name in EMPTY_BY_DEFAULT, f"{variable}: give it a value in EMPTY_BY_DEFAULT"
            value = EMPTY_BY_DEFAULT[name].replace("<held>", str(held))
            value = value.replace("<dir>", str(tmp_path))
        else:
            value = str(default).lower() if isinstance(default, bool) else str(default)
        url = URLS.get(name.split("_")[0], "")  # what a connection string's file or variable holds
        held.write_text(url)
        settings = Settings.from_env({variable: value, "HELD_URL": url})
        assert name in settings.explicit, variable
        assert str(getattr(settings, name)).lower() == value.lower(), variable


def test_an_unknown_eventfleet_variable_is_ignored_as_before() -> None:
    settings = Settings.from_env({"EVENTFLEET_NO_SUCH_SETTING": "1", "EVENTFLEET_partitions": "3"})
    assert settings == Settings() and settings.explicit == frozenset()


def test_direct_construction_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTFLEET_PARTITIONS", "5")
    assert Settings().partitions == 8 and Settings(group_id="g").partitions == 8
    assert Settings.from_env().partitions == 5
    with pytest.raises(ValidationError, match="partition"):
        Settings(partition=3)  # type: ignore[call-arg]


def test_a_copy_keeps_what_was_set_and_with_defaults_refuses_an_unknown_name() -> None:
    settings = Settings.from_env({"EVENTFLEET_PARTITIONS": "3"})
    moved = settings.model_copy(update={"http_port": 0})
    assert (moved.partitions, moved.http_port, settings.http_port) == (3, 0, 8080)
    assert moved.with_defaults(partitions=9, http_port=1, batch_size=7).batch_size == 7
    assert moved.with_defaults(partitions=9).partitions == 3
    with pytest.raises(TypeError, match="partition"):
        settings.with_defaults(partition=9)
    with pytest.raises(AttributeError, match="model_copy"):
        settings.partitions = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "raw", "words"),
    [
        ("EVENTFLEET_KAFKA_URL", "kafka://broker:0", "port from 1 to 65535"),
        ("EVENTFLEET_MONGO_URL", "mongodb://m1:0,m2:27017", "port from 1 to 65535"),
        ("EVENTFLEET_REDIS_URL", "redis+sentinel://", "names no host"),
        ("EVENTFLEET_REDIS_URL", "unix://", "names no socket path"),
        ("EVENTFLEET_KAFKA_URL", "kafka://a:9092,", "empty host"),
        ("EVENTFLEET_KAFKA_URL", "kafka://bro ker:9092", "invalid domain character"),
        ("EVENTFLEET_NATS_URL", "ws://n1:4222", "expected a URL starting with nats:// or tls://"),
        ("EVENTFLEET_BRIDGE_BUS", "kafka", "expected 'redis' or 'nats'"),
        ("EVENTFLEET_EVENT_LOOP", "trio", "expected 'uvloop' or 'asyncio'"),
        ("EVENTFLEET_AUTH", "basic", "expected jwt, proxy or none"),
        ("EVENTFLEET_PARTITIONS", "8.5", "expected a whole number"),
        ("EVENTFLEET_KAFKA_TIMEOUT_MS", str(2**31), "expected a number from 100 to 2147483647"),
        ("EVENTFLEET_ALLOWED_ORIGINS", "https://app.example/path", "comma-separated origins"),
        ("EVENTFLEET_TRACE_URL_TEMPLATE", "http://jaeger/trace", "holding {trace_id}"),
    ],
)
def test_a_refused_value_says_what_was_expected(variable: str, raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({variable: raw})
    message = str(refused.value)
    assert message.startswith(f"{variable}={raw!r} is invalid: ") and words in message
    assert "\n" not in message and message.endswith(".")


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("EVENTFLEET_REDIS_URL", "unix:///run/redis/redis.sock"),
        ("EVENTFLEET_REDIS_URL", "unix://host/run/redis.sock"),
        ("EVENTFLEET_KAFKA_URL", "kafka://broker"),
        ("EVENTFLEET_KAFKA_URL", "kafka://broker.kafka.svc.cluster.local:9092"),
        ("EVENTFLEET_NATS_URL", "tls://user:pw@n1:4222,n2:4222"),
        ("EVENTFLEET_MONGO_URL", "mongodb://user:p@ss@m1:27017/?authSource=admin&tls=true"),
        ("EVENTFLEET_MONGO_URL", "mongodb://[::1]:27017"),
    ],
)
def test_a_url_is_kept_as_written(variable: str, raw: str) -> None:
    settings = Settings.from_env({variable: raw})
    assert getattr(settings, variable.removeprefix("EVENTFLEET_").lower()) == raw
