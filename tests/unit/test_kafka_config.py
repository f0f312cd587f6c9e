"""The Kafka connection config: every client gets the same security, secrets stay hidden."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from topics.errors import ConfigError
from workers.adapters.kafka import KafkaConfig, plain
from workers.runtime.connections import kafka_config
from workers.runtime.settings import Settings
from workers.secrets import Secret, read_secrets
from workers.stream.faust_app import faust_credentials


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def sasl_ssl(ca_file: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers=("b1:9093", "b2:9093"),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="fleet",
        sasl_password=Secret("s3cret-pw"),
        ssl_cafile=ca_file,
    )


def test_plaintext_is_the_default_and_needs_nothing_else() -> None:
    kafka = plain("kafka://a:1,b:2")
    assert kafka.client_kwargs() == {
        "bootstrap_servers": ["a:1", "b:2"],
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 5000,
    }
    assert faust_credentials(kafka) is None
    assert kafka.idempotence is False


def test_sasl_ssl_gives_aiokafka_the_mechanism_the_user_and_a_verifying_context(
    ca_file: str,
) -> None:
    kwargs = sasl_ssl(ca_file).client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("fleet", "s3cret-pw")
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_faust_gets_exactly_what_our_clients_get(ca_file: str) -> None:
    for kafka in (sasl_ssl(ca_file), KafkaConfig(("b:1",), "SSL", ssl_cafile=ca_file)):
        credentials = faust_credentials(kafka)
        assert isinstance(credentials, SASLCredentials | SSLCredentials)
        faust_auth = credentials_to_aiokafka_auth(credentials)
        ours = kafka.client_kwargs()
        assert {k: v for k, v in faust_auth.items() if v is not None} == {
            k: v for k, v in ours.items() if k not in ("bootstrap_servers", "request_timeout_ms")
        }


def test_the_password_never_shows_in_repr_str_or_description(ca_file: str) -> None:
    kafka = sasl_ssl(ca_file)
    for text in (repr(kafka), str(kafka), kafka.describe(), repr(kafka.sasl_password)):
        assert "s3cret" not in text
    assert kafka.describe() == f"b1:9093,b2:9093 SASL_SSL SCRAM-SHA-512 as fleet CA {ca_file}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"security_protocol": "TLS"}, "is not one of PLAINTEXT"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "is not one of PLAIN"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "needs EVENTFLEET"),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "go together"),
        ({"ssl_cafile": "ca.pem"}, "use SSL or SASL_SSL"),
        ({"bootstrap_servers": ()}, "at least one bootstrap server"),
    ],
)
def test_an_inconsistent_config_is_refused_naming_the_setting(
    values: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"bootstrap_servers": ("b:1",)}
    with pytest.raises(ConfigError, match=message):
        KafkaConfig(**{**base, **values})  # type: ignore[arg-type]


def test_the_password_comes_from_a_file_or_a_variable_named_in_the_settings(
    tmp_path: Path, ca_file: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    common = {
        "EVENTFLEET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EVENTFLEET_KAFKA_SASL_USERNAME": "fleet",
        "EVENTFLEET_KAFKA_SSL_CAFILE": ca_file,
    }
    by_file = Settings.from_env({**common, "EVENTFLEET_KAFKA_SASL_PASSWORD_FILE": str(secret)})
    config = kafka_config(by_file, read_secrets(by_file, {}))
    assert config.client_kwargs()["sasl_plain_password"] == "from-file"
    by_env = Settings.from_env({**common, "EVENTFLEET_KAFKA_SASL_PASSWORD_ENV": "KAFKA_PW"})
    config = kafka_config(by_env, read_secrets(by_env, {"KAFKA_PW": "from-env"}))
    assert config.client_kwargs()["sasl_plain_password"] == "from-env"


@pytest.mark.parametrize(
    ("extra", "environ", "message"),
    [
        ({"EVENTFLEET_KAFKA_SASL_PASSWORD_ENV": "KAFKA_PW"}, {}, "KAFKA_PW'?: that environment"),
        ({"EVENTFLEET_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, {}, "cannot be read"),
        ({}, {}, "needs EVENTFLEET_KAFKA_SASL_USERNAME and a password"),
        (
            {
                "EVENTFLEET_KAFKA_SASL_PASSWORD_ENV": "A",
                "EVENTFLEET_KAFKA_SASL_PASSWORD_FILE": "/x",
            },
            {"A": "x"},
            "set only one of them",
        ),
        ({"EVENTFLEET_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, {}, "is not a readable file"),
    ],
)
def test_a_missing_secret_or_file_stops_the_start_with_the_setting_to_fix(
    extra: dict[str, str], environ: dict[str, str], message: str
) -> None:
    settings = Settings.from_env(
        {
            "EVENTFLEET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EVENTFLEET_KAFKA_SASL_USERNAME": "fleet",
            **extra,
        }
    )
    with pytest.raises(ConfigError, match=message):
        kafka_config(settings, read_secrets(settings, environ))
