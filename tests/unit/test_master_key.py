"""The master key: refused when personal data has none, one clear line for a bad one, dev's own."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from snapshot_rules.domain import Domains
from topics.errors import ConfigError
from workers.devtools.banner import exports
from workers.devtools.dev_keys import dev_master_key
from workers.examples.domains import default_domains
from workers.examples.domains.order import ORDER
from workers.runtime.connections import required_master_key
from workers.runtime.settings import Settings
from workers.secrets import Secrets, read_secrets

GOOD = base64.b64encode(b"k" * 32).decode()


def master_key(settings: Settings, environ: dict[str, str] | None = None) -> bytes | None:
    """The master key a process with ``settings`` reads at start, in ``environ``."""
    key = read_secrets(settings, environ or {}).master_key
    return None if key is None else key.reveal()


def test_personal_fields_without_a_master_key_are_refused_naming_both_settings() -> None:
    with pytest.raises(ConfigError) as refused:
        required_master_key(read_secrets(Settings(), {}), default_domains())
    message = str(refused.value)
    assert "\n" not in message and "chat_room" in message and "account" in message
    assert "EVENTFLEET_MASTER_KEY_FILE" in message and "EVENTFLEET_MASTER_KEY_ENV" in message


def test_domains_without_personal_fields_need_no_master_key() -> None:
    assert required_master_key(Secrets(), Domains([ORDER])) is None


def test_a_good_key_is_read_from_the_variable_or_the_file(tmp_path: Path) -> None:
    by_env = read_secrets(Settings(master_key_env="MK"), {"MK": GOOD})
    assert required_master_key(by_env, default_domains()) == b"k" * 32
    path = tmp_path / "key"
    path.write_text(GOOD + "\n")
    assert master_key(Settings(master_key_file=str(path))) == b"k" * 32


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (base64.b64encode(b"short").decode(), "not 32 bytes in base64"),
        ("not base64 at all!", "not 32 bytes in base64"),
        (base64.b64encode(b"k" * 33).decode(), "not 32 bytes in base64"),
        ("", "not set or empty"),
    ],
)
def test_a_bad_key_is_one_clear_line_never_the_key(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        master_key(Settings(master_key_env="MK"), {"MK": value})
    message = str(refused.value)
    assert "\n" not in message and words in message and "EVENTFLEET_MASTER_KEY_ENV" in message
    assert not value or value not in message


def test_a_missing_or_empty_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"EVENTFLEET_MASTER_KEY_FILE=.*cannot be read"):
        master_key(Settings(master_key_file=str(missing)))
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"EVENTFLEET_MASTER_KEY_FILE=.*empty"):
        master_key(Settings(master_key_file=str(empty)))


def test_both_settings_at_once_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(GOOD)
    both = Settings(master_key_file=str(path), master_key_env="MK")
    with pytest.raises(ConfigError, match="set only one"):
        master_key(both, {"MK": GOOD})


def test_dev_makes_a_private_key_per_run_and_exports_it(tmp_path: Path) -> None:
    settings = dev_master_key(tmp_path, Settings())
    path = Path(settings.master_key_file)
    assert path.parent == tmp_path and stat.S_IMODE(path.stat().st_mode) == 0o600
    key = required_master_key(read_secrets(settings, {}), default_domains())
    assert key is not None and len(key) == 32
    (tmp_path / "next").mkdir()
    other = dev_master_key(tmp_path / "next", Settings())
    assert master_key(other) != key  # a fresh key each run
    block = [line for line in exports(settings) if "MASTER_KEY" in line]
    assert block == [f"export EVENTFLEET_MASTER_KEY_FILE={path}"]


def test_dev_keeps_the_master_key_the_user_chose(tmp_path: Path) -> None:
    chosen = Settings.from_env({"EVENTFLEET_MASTER_KEY_ENV": "MK"})
    assert dev_master_key(tmp_path, chosen) == chosen and os.listdir(tmp_path) == []
