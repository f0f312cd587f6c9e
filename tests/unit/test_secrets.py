"""Secrets are masked in every text that may carry a connection string."""

from __future__ import annotations

import pytest

from workers.secrets import Secret, mask_url, redact


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
