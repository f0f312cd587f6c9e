"""A shell holding an ended dev run's export block is told the stack is not running."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from workers.devtools.dev_runs import DevRunEnded, check_dev_run, run_of
from workers.runtime.settings import Settings


def test_a_dev_run_is_found_in_a_path() -> None:
    assert run_of("/tmp/eventfleet-dev-abc/dev-master-key") == PurePath("/tmp/eventfleet-dev-abc")
    assert run_of("/tmp/x/eventfleet-dev-abc/keys/jwks.json") == PurePath(
        "/tmp/x/eventfleet-dev-abc"
    )
    assert run_of("/etc/eventfleet/master-key/key") is None
    assert run_of("/tmp/eventfleet-dev-abc") is None  # the directory itself is no file of it


def test_an_ended_run_is_named_with_the_fix(tmp_path: Path) -> None:
    gone = tmp_path / "eventfleet-dev-gone" / "dev-master-key"
    settings = Settings.from_env({"EVENTFLEET_MASTER_KEY_FILE": str(gone)})
    with pytest.raises(DevRunEnded) as raised:
        check_dev_run(settings)
    message = str(raised.value)
    assert message.startswith("the dev stack is not running: EVENTFLEET_MASTER_KEY_FILE=")
    assert str(gone.parent) in message and "Start `eventfleet dev` again" in message


def test_a_running_run_or_another_file_passes(tmp_path: Path) -> None:
    running = tmp_path / "eventfleet-dev-live"
    running.mkdir()
    check_dev_run(Settings.from_env({"EVENTFLEET_MASTER_KEY_FILE": str(running / "key")}))
    # Not a dev run's: left to the secrets' own reader and its message.
    check_dev_run(Settings.from_env({"EVENTFLEET_MASTER_KEY_FILE": str(tmp_path / "nokey")}))
    check_dev_run(Settings.from_env({}))
