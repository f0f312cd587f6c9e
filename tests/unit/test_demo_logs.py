"""While the demo runs its logs go to a file; the terminal keeps errors only, then all again."""

from __future__ import annotations

import logging
import sys

import pytest

from workers.devtools.demo_logs import logs_aside


def test_records_go_to_the_file_and_only_errors_to_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root.addHandler(terminal)
    log = logging.getLogger("test.demo_logs")
    log.setLevel(logging.INFO)
    try:
        with logs_aside() as path:
            log.info("a role started")
            log.error("a role failed")
        log.info("after the demo")
    finally:
        root.removeHandler(terminal)
    try:
        assert path.read_text().splitlines() == ["INFO a role started", "ERROR a role failed"]
        shown = capsys.readouterr().err.splitlines()
        assert shown == ["ERROR a role failed", "INFO after the demo"]  # the level comes back
        assert terminal.level == logging.NOTSET and terminal not in root.handlers
    finally:
        path.unlink()


def test_the_file_handler_is_gone_even_when_the_run_fails() -> None:
    before = list(logging.getLogger().handlers)
    with pytest.raises(RuntimeError), logs_aside() as path:
        raise RuntimeError("the demo failed")
    assert logging.getLogger().handlers == before
    path.unlink()
