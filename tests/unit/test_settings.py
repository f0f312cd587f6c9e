"""Settings: documented defaults, environment overrides, and errors that name the variable."""

from __future__ import annotations

import pytest

from topics.errors import ConfigError
from workers.runtime.settings import ENV_PREFIX, Settings, documented, env_name
from workers.secrets import mask_url

_FIELDS = list(Settings.model_fields)


def test_defaults_apply_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.explicit == frozenset()
    assert settings.kafka_url == "kafka://127.0.0.1:9092"
    assert settings.partitions == 8
    assert settings.http_port == 8080
    assert settings.kafka_idempotence is True
    assert settings.topic_prefix == "eventfleet."


def test_every_setting_is_documented_with_its_default() -> None:
    table = documented()
    assert [name for name, _, _ in table] == [env_name(f) for f in _FIELDS]
    defaults = Settings()
    for (variable, default, doc), field_name in zip(table, _FIELDS, strict=True):
        assert variable == ENV_PREFIX + field_name.upper()
        set_by_default = getattr(defaults, field_name)
        assert default == ("" if set_by_default is None else set_by_default)  # None: unset
        assert len(doc) > 5, f"{variable} has no description"
    assert "EVENTFLEET_EXPLICIT" not in {name for name, _, _ in table}


def test_every_default_passes_its_own_validation() -> None:
    environ = {variable: str(default) for variable, default, _ in documented()}
    environ["EVENTFLEET_KAFKA_IDEMPOTENCE"] = "true"
    assert Settings.from_env(environ) == Settings()


def test_overrides_are_parsed_and_recorded_as_explicit() -> None:
    environ = {
        "EVENTFLEET_KAFKA_URL": "kafka://k1:9092,k2:9093",
        "EVENTFLEET_MONGO_URL": "mongodb://user:pw@m1:27017,m2:27018/?replicaSet=rs0",
        "EVENTFLEET_REDIS_URL": "rediss://r:6380/2",
        "EVENTFLEET_TOPIC_PREFIX": "test-1.",
        "EVENTFLEET_PARTITIONS": "3",
        "EVENTFLEET_HTTP_PORT": "0",
        "EVENTFLEET_KAFKA_IDEMPOTENCE": "off",
        "EVENTFLEET_LOG_LEVEL": "DEBUG",
        "EVENTFLEET_DOMAINS": "my.pkg:domains",
        "UNRELATED": "ignored",
        "EVENTFLEET_REPLICATION": "",  # empty means "not set"
    }
    settings = Settings.from_env(environ)
    assert settings.kafka_url == "kafka://k1:9092,k2:9093"
    assert settings.kafka_bootstrap == ["k1:9092", "k2:9093"]
    assert settings.mongo_url.startswith("mongodb://user:pw@m1")
    assert settings.redis_url == "rediss://r:6380/2"
    assert settings.topic_prefix == "test-1."
    assert settings.partitions == 3
    assert settings.http_port == 0
    assert settings.kafka_idempotence is False
    assert settings.log_level == "DEBUG"
    assert settings.domains == "my.pkg:domains"
    assert settings.replication == 1
    assert settings.explicit == {
        "kafka_url",
        "mongo_url",
        "redis_url",
        "topic_prefix",
        "partitions",
        "http_port",
        "kafka_idempotence",
        "log_level",
        "domains",
    }


def test_surrounding_whitespace_is_ignored() -> None:
    settings = Settings.from_env({"EVENTFLEET_PARTITIONS": " 12\n", "EVENTFLEET_HTTP_HOST": " h "})
    assert settings.partitions == 12
    assert settings.http_host == "h"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("on", True), ("0", False), ("No", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"EVENTFLEET_KAFKA_IDEMPOTENCE": raw}).kafka_idempotence is expected


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTFLEET_PARTITIONS", "5")
    monkeypatch.setenv("EVENTFLEET_HTTP_PORT", "9999")
    settings = Settings.from_env()
    assert (settings.partitions, settings.http_port) == (5, 9999)
    assert {"partitions", "http_port"} <= settings.explicit


def test_with_defaults_fills_only_what_the_environment_left_unset() -> None:
    settings = Settings.from_env({"EVENTFLEET_KAFKA_URL": "kafka://given:1"})
    changed = settings.with_defaults(
        kafka_url="kafka://embedded:2", mongo_url="mongodb://embedded:3", partitions=2
    )
    assert changed.kafka_url == "kafka://given:1"
    assert changed.mongo_url == "mongodb://embedded:3"
    assert changed.partitions == 2
    assert changed.explicit == {"kafka_url"}
    assert settings.mongo_url == "mongodb://127.0.0.1:27017"  # the original is untouched


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.partitions = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("EVENTFLEET_KAFKA_URL", "http://broker:9092"),
        ("EVENTFLEET_KAFKA_URL", "broker:9092"),
        ("EVENTFLEET_KAFKA_URL", "kafka://"),
        ("EVENTFLEET_KAFKA_URL", "kafka://broker:notaport"),
        ("EVENTFLEET_KAFKA_URL", "kafka://broker:0"),
        ("EVENTFLEET_KAFKA_URL", "kafka://broker:70000"),
        ("EVENTFLEET_KAFKA_URL", "kafka://a:9092,b:x"),
        ("EVENTFLEET_MONGO_URL", "postgres://db:5432"),
        ("EVENTFLEET_MONGO_URL", "mongodb://"),
        ("EVENTFLEET_MONGO_URL", "mongodb://user:pw@"),
        ("EVENTFLEET_REDIS_URL", "redis//127.0.0.1:6379"),
        ("EVENTFLEET_REDIS_URL", "redis://127.0.0.1:-1"),
        ("EVENTFLEET_NATS_URL", "kafka://127.0.0.1:4222"),
        ("EVENTFLEET_PARTITIONS", "-1"),
        ("EVENTFLEET_PARTITIONS", "0"),
        ("EVENTFLEET_PARTITIONS", "eight"),
        ("EVENTFLEET_PARTITIONS", "2.5"),
        ("EVENTFLEET_PARTITIONS", "10001"),
        ("EVENTFLEET_REPLICATION", "0"),
        ("EVENTFLEET_HTTP_PORT", "65536"),
        ("EVENTFLEET_HTTP_PORT", "-80"),
        ("EVENTFLEET_HTTP_HOST", "   "),
        ("EVENTFLEET_KAFKA_TIMEOUT_MS", "99"),
        ("EVENTFLEET_KAFKA_SESSION_TIMEOUT_MS", "999"),
        ("EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS", "0"),
        ("EVENTFLEET_KAFKA_COMMIT_INTERVAL_MS", "0.2s"),
        ("EVENTFLEET_MAX_BODY_BYTES", "1k"),
        ("EVENTFLEET_KAFKA_IDEMPOTENCE", "maybe"),
        ("EVENTFLEET_KAFKA_IDEMPOTENCE", "2"),
        ("EVENTFLEET_DOMAINS", "workers.examples.domains.default_domains"),
        ("EVENTFLEET_LOG_LEVEL", "verbose"),
        ("EVENTFLEET_LOG_LEVEL", "critical"),
        ("EVENTFLEET_TOPIC_PREFIX", "bad prefix/"),
        ("EVENTFLEET_MONGO_DATABASE", "db$name"),
        ("EVENTFLEET_GROUP_ID", "group id"),
        ("EVENTFLEET_REDIS_URL", "redis+sentinel://"),
        ("EVENTFLEET_REDIS_URL", "redis+cluster://a:1,b:x"),
        ("EVENTFLEET_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("EVENTFLEET_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("EVENTFLEET_KAFKA_SASL_PASSWORD_ENV", "1BAD"),
        ("EVENTFLEET_KAFKA_SASL_PASSWORD_ENV", "has-dash"),
        ("EVENTFLEET_KAFKA_SSL_CAFILE", "/etc/ssl/"),
        ("EVENTFLEET_TOPICS_AUTO_CREATE", "sometimes"),
        ("EVENTFLEET_MIN_INSYNC_REPLICAS", "17"),
        ("EVENTFLEET_TOPIC_RETENTION_MS", "-2"),
        ("EVENTFLEET_HEALTH_INTERVAL_S", "0"),
    ],
)
def test_an_invalid_value_fails_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    shown = mask_url(raw)  # a URL's password never appears, even in an error
    assert repr(shown.strip()) in message or repr(shown) in message
    assert "Default:" in message  # the message shows a value that would work
    assert caught.value.retriable is False


def test_the_first_bad_variable_is_reported_even_among_good_ones() -> None:
    environ = {"EVENTFLEET_PARTITIONS": "4", "EVENTFLEET_HTTP_PORT": "http"}
    with pytest.raises(ConfigError, match="EVENTFLEET_HTTP_PORT"):
        Settings.from_env(environ)


def test_ipv6_and_credentials_in_urls_are_accepted() -> None:
    settings = Settings.from_env(
        {
            "EVENTFLEET_KAFKA_URL": "kafka://[::1]:9092",
            "EVENTFLEET_MONGO_URL": "mongodb+srv://user:p%40ss@cluster.example.net/db",
            "EVENTFLEET_REDIS_URL": "redis://:secret@127.0.0.1:6379/0",
        }
    )
    assert settings.kafka_bootstrap == ["[::1]:9092"]


def test_a_redis_unix_socket_url_is_accepted() -> None:
    # ``unix`` is one of the schemes the setting offers, and redis-py reads
    # unix:///path/to/redis.sock; a socket path has no network host to require.
    settings = Settings.from_env({"EVENTFLEET_REDIS_URL": "unix:///run/redis/redis.sock"})
    assert settings.redis_url == "unix:///run/redis/redis.sock"


@pytest.mark.parametrize("raw", ["kafka://:9092", "kafka://a:9092,:9093"])
def test_a_port_without_a_host_is_a_missing_host(raw: str) -> None:
    with pytest.raises(ConfigError, match="EVENTFLEET_KAFKA_URL"):
        Settings.from_env({"EVENTFLEET_KAFKA_URL": raw})


@pytest.mark.parametrize(
    "raw",
    [
        "mongodb://admin:hunter2@",
        "mongodb://admin:hunter2@db:notaport",
        "postgres://admin:hunter2@db:5432",
    ],
)
def test_an_invalid_url_is_echoed_with_its_password_masked(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"EVENTFLEET_MONGO_URL": raw})
    assert "hunter2" not in str(caught.value)
    assert "admin:***@" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379,s2:26379/mymaster/0",
        "rediss+sentinel://:pw@s1:26379/mymaster",
        "redis+cluster://n1:6379,n2:6380",
        "rediss+cluster://:pw@n1:6379",
    ],
)
def test_redis_sentinel_and_cluster_urls_are_accepted(url: str) -> None:
    assert Settings.from_env({"EVENTFLEET_REDIS_URL": url}).redis_url == url


def test_kafka_security_settings_are_normalised() -> None:
    settings = Settings.from_env(
        {
            "EVENTFLEET_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "EVENTFLEET_KAFKA_SASL_MECHANISM": "scram-sha-256",
            "EVENTFLEET_KAFKA_SASL_PASSWORD_ENV": "KAFKA_PASSWORD",
            "EVENTFLEET_TOPICS_AUTO_CREATE": "yes",
        }
    )
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert settings.topics_auto_create is True
    assert Settings().topics_auto_create is False  # workers create topics only when told


def test_the_repr_masks_passwords() -> None:
    settings = Settings.from_env(
        {
            "EVENTFLEET_MONGO_URL": "mongodb://admin:hunter2@m1:27017",
            "EVENTFLEET_REDIS_URL": "redis+sentinel://:hunter3@s1:26379/m/0",
        }
    )
    text = repr(settings)
    assert "hunter2" not in text and "hunter3" not in text
    assert "mongodb://admin:***@m1:27017" in text and "partitions=8" in text
