"""Secrets: masked in every text that may carry one, and read by one reader, once, each way."""

from __future__ import annotations

import base64
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from topics.errors import ConfigError
from workers.runtime.settings import Settings
from workers.secrets import (
    AUTH_HS256_SECRET,
    CONNECTION_SECRETS,
    KAFKA_SASL_PASSWORD,
    MASTER_KEY,
    SECRETS,
    Secret,
    Secrets,
    SecretSetting,
    mask_url,
    read_secrets,
    redact,
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "mongodb://admin:hunter2@m1:27017,m2/?replicaSet=rs0",
            "mongodb://admin:***@m1:27017,m2/?replicaSet=rs0",
        ),
        ("redis://:hunter2@r:6379/0", "redis://:***@r:6379/0"),
        (
            "mongodb+srv://u:p%40ss@cluster.example.net/db",
            "mongodb+srv://u:***@cluster.example.net/db",
        ),
        (
            "redis+sentinel://s1:26379/m?sentinel_password=hunter2&x=1",
            "redis+sentinel://s1:26379/m?sentinel_password=***&x=1",
        ),
        ("kafka://b1:9092,b2:9092", "kafka://b1:9092,b2:9092"),
        ("mongodb://user@m1", "mongodb://user@m1"),
    ],
)
def test_mask_url_hides_passwords_and_keeps_the_rest(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redact_masks_urls_inside_text_and_given_secret_values() -> None:
    text = "connect to mongodb://a:hunter2@h failed; token xyz-123 rejected"
    assert redact(text, Secret("xyz-123")) == (
        "connect to mongodb://a:***@h failed; token *** rejected"
    )
    assert redact("nothing secret", None, "") == "nothing secret"


def test_a_secret_never_prints_its_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret} {[secret]} { ({'pw': secret}) }"
    assert secret.reveal() == "hunter2" and secret == Secret("hunter2") and bool(secret)


# Every secret the fleet reads, through each way it may be given, and each way it may be wrong.

HS256 = b"h" * 40
MASTER = b"m" * 32
SECRET_VALUES: dict[str, tuple[bytes, bytes | str]] = {
    # setting name: (what its file or variable holds, what the process gets)
    "auth_hs256_secret": (HS256, HS256),
    "kafka_sasl_password": (b"pa55-w\xc3\xb6rd", "pa55-w\u00f6rd"),
    "master_key": (base64.b64encode(MASTER), MASTER),
}
URLS = {
    "mongo_url": "mongodb://fleet:hunter2@m1:27017,m2:27017/?replicaSet=rs0",
    "redis_url": "redis://:hunter2@r1:6379/0",
    "nats_url": "nats://fleet:hunter2@n1:4222",
}


def test_every_secret_is_declared_with_both_settings() -> None:
    names = set(Settings.model_fields)
    for secret in (*SECRETS, *CONNECTION_SECRETS):
        assert {f"{secret.name}_file", f"{secret.name}_env"} <= names, secret.name
        assert secret.plain == (secret.name in names), secret.name  # a value only for URLs
    assert set(SECRET_VALUES) == {s.name for s in SECRETS}
    assert set(URLS) == {s.name for s in CONNECTION_SECRETS}


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s.name)
@pytest.mark.parametrize("way", ["file", "env"])
def test_each_secret_is_read_from_its_file_or_its_variable(
    secret: SecretSetting, way: str, tmp_path: Path
) -> None:
    held, wanted = SECRET_VALUES[secret.name]
    path = tmp_path / "secret"
    path.write_bytes(held + b"\n")  # the end of line a mounted file often has is dropped
    env = {secret.file_variable: str(path)} if way == "file" else {secret.env_variable: "HELD"}
    environ = {**env, "HELD": held.decode()}
    secrets = read_secrets(Settings.from_env(environ), environ)
    found = getattr(secrets, secret.name)
    assert isinstance(found, Secret) and found.reveal() == wanted
    assert held.decode() not in repr(secrets) and str(wanted) not in repr(secrets)
    others = [s.name for s in SECRETS if s is not secret]
    assert all(getattr(secrets, name) is None for name in others)  # none given: none read


def test_no_secret_given_reads_nothing() -> None:
    assert read_secrets(Settings(), {}) == Secrets()


@pytest.mark.parametrize("secret", (*SECRETS, *CONNECTION_SECRETS), ids=lambda s: s.name)
def test_a_missing_empty_or_doubly_given_secret_is_one_line_naming_its_setting(
    secret: SecretSetting, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    held = tmp_path / "held"
    held.write_bytes(SECRET_VALUES.get(secret.name, (URLS.get(secret.name, "").encode(),))[0])
    cases = [
        (
            {secret.file_variable: str(tmp_path / "nope")},
            rf"{secret.file_variable}=.*cannot be read",
        ),
        ({secret.file_variable: str(empty)}, rf"{secret.file_variable}=.*file is empty"),
        ({secret.env_variable: "UNSET_HERE"}, rf"{secret.env_variable}=.*not set or empty"),
        ({secret.env_variable: "BLANK"}, rf"{secret.env_variable}=.*not set or empty"),
        (
            {secret.file_variable: str(held), secret.env_variable: "HELD"},
            f"{secret.file_variable} and {secret.env_variable} both name the {secret.what}; "
            "set only one of them",
        ),
    ]
    if secret.plain:
        cases.append((
            {secret.plain_variable: URLS[secret.name], secret.file_variable: str(held)},
            f"{secret.plain_variable} and {secret.file_variable} both name",
        ))  # fmt: skip
    for given, words in cases:
        environ = {**given, "BLANK": "", "HELD": "x"}
        with pytest.raises(ConfigError) as refused:
            read_secrets(Settings.from_env(environ), environ)
        message = str(refused.value)
        assert re.search(words, message), (given, message)
        assert "\n" not in message and "hunter2" not in message


@pytest.mark.parametrize(
    ("secret", "held", "words"),
    [
        (MASTER_KEY, base64.b64encode(b"short"), "not 32 bytes in base64"),
        (MASTER_KEY, b"not base64 at all!", "not 32 bytes in base64"),
        (AUTH_HS256_SECRET, b"too short to sign", "holds 17 bytes; it needs at least 32"),
        (KAFKA_SASL_PASSWORD, b"\xff\xfe not text", "is not UTF-8 text"),
    ],
)
def test_a_malformed_secret_is_refused_naming_where_it_came_from(
    secret: SecretSetting, held: bytes, words: str, tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(held)
    with pytest.raises(ConfigError, match=words) as refused:
        read_secrets(Settings.from_env({secret.file_variable: str(path)}), {})
    assert str(refused.value).startswith(f"{secret.file_variable}={str(path)!r}: the ")
    assert held.decode("utf-8", "replace") not in str(refused.value)


@pytest.mark.parametrize("secret", CONNECTION_SECRETS, ids=lambda s: s.name)
@pytest.mark.parametrize("way", ["plain", "file", "env"])
def test_a_connection_string_is_read_plainly_from_a_file_or_from_a_variable(
    secret: SecretSetting, way: str, tmp_path: Path
) -> None:
    url = URLS[secret.name]
    path = tmp_path / "url"
    path.write_text(url + "\n")
    given = {
        "plain": {secret.plain_variable: url},
        "file": {secret.file_variable: str(path)},
        "env": {secret.env_variable: "HELD"},
    }[way]
    settings = Settings.from_env({**given, "HELD": url})
    assert getattr(settings, secret.name) == url and secret.name in settings.explicit
    assert "hunter2" not in repr(settings)  # shown masked, wherever it came from


@pytest.mark.parametrize("secret", CONNECTION_SECRETS, ids=lambda s: s.name)
def test_a_bad_connection_string_in_a_file_names_the_file_never_the_password(
    secret: SecretSetting, tmp_path: Path
) -> None:
    path = tmp_path / "url"
    path.write_text("https://fleet:hunter2@elsewhere:1/\n")
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({secret.file_variable: str(path)})
    message = str(refused.value)
    assert message.startswith(f"{secret.file_variable}={str(path)!r}: the {secret.what} there")
    assert "expected a URL starting with" in message and "hunter2" not in message


class CountingEnviron(dict[str, str]):
    """An environment that counts how often each variable is looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.reads: Counter[str] = Counter()

    def get(self, key: str, default: Any = None) -> Any:
        self.reads[key] += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.reads[key] += 1
        return super().__getitem__(key)


def test_reading_the_secrets_looks_each_one_up_once() -> None:
    held = {"MK": base64.b64encode(MASTER).decode(), "PW": "pw", "HS": HS256.decode()}
    environ = CountingEnviron({
        MASTER_KEY.env_variable: "MK", KAFKA_SASL_PASSWORD.env_variable: "PW",
        AUTH_HS256_SECRET.env_variable: "HS", **held,
    })  # fmt: skip
    secrets = read_secrets(Settings.from_env(environ), environ)
    assert secrets.master_key is not None and secrets.master_key.reveal() == MASTER
    assert {name: environ.reads[name] for name in held} == {"MK": 1, "PW": 1, "HS": 1}


def test_a_secrets_directory_holds_each_secret_under_its_variables_name(tmp_path: Path) -> None:
    (tmp_path / "EVENTFLEET_MASTER_KEY").write_bytes(base64.b64encode(MASTER) + b"\n")
    (tmp_path / "eventfleet_kafka_sasl_password").write_text("pa55\n")  # any case
    (tmp_path / "EVENTFLEET_MONGO_URL").write_text(URLS["mongo_url"] + "\n")
    (tmp_path / "EVENTFLEET_PARTITIONS").write_text("3")  # not a secret: not read from there
    environ = {"EVENTFLEET_SECRETS_DIR": str(tmp_path)}
    settings = Settings.from_env(environ)
    assert settings.mongo_url == URLS["mongo_url"] and "mongo_url" in settings.explicit
    assert settings.partitions == 8 and "hunter2" not in repr(settings)
    secrets = read_secrets(settings, environ)
    assert secrets.master_key is not None and secrets.master_key.reveal() == MASTER
    assert secrets.kafka_sasl_password == Secret("pa55") and secrets.auth_hs256_secret is None


@pytest.mark.parametrize("secret", (*SECRETS, *CONNECTION_SECRETS), ids=lambda s: s.name)
def test_a_secret_in_the_directory_and_named_elsewhere_is_refused_naming_both(
    secret: SecretSetting, tmp_path: Path
) -> None:
    held = SECRET_VALUES.get(secret.name, (URLS.get(secret.name, "").encode(),))[0]
    (tmp_path / secret.plain_variable).write_bytes(held)
    environ = {"EVENTFLEET_SECRETS_DIR": str(tmp_path), secret.env_variable: "HELD", "HELD": "x"}
    with pytest.raises(ConfigError) as refused:
        read_secrets(Settings.from_env(environ), environ)
    assert str(refused.value) == (
        f"{secret.env_variable} and EVENTFLEET_SECRETS_DIR both name the {secret.what}; "
        "set only one of them."
    )


@pytest.mark.parametrize(
    ("variable", "held", "words"),
    [
        ("EVENTFLEET_MASTER_KEY", base64.b64encode(b"hunter2"), "the master key is not 32 bytes"),
        ("EVENTFLEET_AUTH_HS256_SECRET", b"hunter2", "the HS256 secret holds 7 bytes"),
        (
            "EVENTFLEET_MONGO_URL",
            b"https://fleet:hunter2@m1/",
            "the MongoDB connection string there is invalid: expected a URL starting with",
        ),
    ],
)
def test_a_malformed_secret_in_the_directory_names_its_file_never_its_value(
    variable: str, held: bytes, words: str, tmp_path: Path
) -> None:
    (tmp_path / variable).write_bytes(held)
    environ = {"EVENTFLEET_SECRETS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError) as refused:
        read_secrets(Settings.from_env(environ), environ)
    message = str(refused.value)
    assert message.startswith(f"EVENTFLEET_SECRETS_DIR={str(tmp_path)!r} (its file {variable}): ")
    assert words in message and "hunter2" not in message and held.decode() not in message


def test_a_secrets_directory_that_is_missing_or_holds_no_text_is_refused(tmp_path: Path) -> None:
    missing = {"EVENTFLEET_SECRETS_DIR": str(tmp_path / "nope")}
    with pytest.raises(ConfigError, match=r"EVENTFLEET_SECRETS_DIR=.*nope.* is no directory"):
        Settings.from_env(missing)
    (tmp_path / "EVENTFLEET_MASTER_KEY").write_bytes(b"\xff\xfe binary")
    environ = {"EVENTFLEET_SECRETS_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="must be readable UTF-8 text"):
        read_secrets(Settings.from_env(environ), environ)


def test_an_empty_file_in_the_secrets_directory_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "EVENTFLEET_REDIS_URL").write_text("\n")
    with pytest.raises(ConfigError, match="its file EVENTFLEET_REDIS_URL is empty"):
        Settings.from_env({"EVENTFLEET_SECRETS_DIR": str(tmp_path)})
