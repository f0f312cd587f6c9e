"""The pure parts of the cross-site check and the JSON content-type rule, hostile inputs first."""

from __future__ import annotations

import pytest

from topics.errors import ConfigError
from workers.http.bodies import is_json
from workers.runtime.door.origins import OriginPolicy, allowed_origins, parse_origin
from workers.runtime.settings import Settings


@pytest.mark.parametrize("raw", [
    "null", "", "evil.example", "javascript:alert(1)", "file://", "https://", "https://a:99999",
    "https://a/path", "https://a?x", "https://a#x", "https://u@a", "data:text/html,x", "ws://a",
])  # fmt: skip
def test_what_is_no_origin(raw: str) -> None:
    assert parse_origin(raw) is None


def test_origins_are_compared_with_their_ports_made_explicit() -> None:
    assert parse_origin("HTTPS://App.Example") == ("https", "app.example", 443)
    assert parse_origin("http://app.example:80") == ("http", "app.example", 80)
    assert parse_origin("http://[::1]:8080") == ("http", "::1", 8080)
    assert allowed_origins("https://a.example, http://b.example:81,") == {
        ("https", "a.example", 443), ("http", "b.example", 81),
    }  # fmt: skip


def test_the_allowed_origins_setting_refuses_what_is_no_origin() -> None:
    assert Settings.from_env({"EVENTFLEET_ALLOWED_ORIGINS": "https://a.example"}).allowed_origins
    for bad in ("a.example", "https://a.example/path", "null", "https://a.example,*"):
        with pytest.raises(ConfigError, match="EVENTFLEET_ALLOWED_ORIGINS"):
            Settings.from_env({"EVENTFLEET_ALLOWED_ORIGINS": bad})


def test_a_bad_trusted_proxy_is_named_in_any_mode() -> None:
    settings = Settings.from_env({"EVENTFLEET_AUTH_TRUSTED_PROXIES": "10.0.0.0/33"})
    with pytest.raises(ConfigError, match=r"10\.0\.0\.0/33"):
        OriginPolicy.of(settings)


@pytest.mark.parametrize("kind", [
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "application/vnd.eventfleet+json", "application/merge-patch+json;charset=UTF-8",
])  # fmt: skip
def test_json_types(kind: str) -> None:
    assert is_json(kind)


@pytest.mark.parametrize("kind", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/jsonx", "application/+json", "text/json",
    "application/octet-stream", "", "json", "application/json+xml",
])  # fmt: skip
def test_not_json_types(kind: str) -> None:
    assert not is_json(kind)
