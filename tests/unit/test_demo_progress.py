"""The demo's progress line and log lines never share a line, on a terminal or in a file."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from workers.examples.demo.progress import CLEAR, ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows: a CLEAR wipes what the current line holds."""
    lines, current = [], ""
    for chunk in written.split("\n"):
        current = chunk.rsplit(CLEAR, 1)[-1] if CLEAR in chunk else chunk
        lines.append(current)
    return [line for line in lines if line]


@pytest.fixture
def root_writing_to() -> Iterator[list[logging.Handler]]:
    root = logging.getLogger()
    added: list[logging.Handler] = []
    yield added
    for handler in added:
        root.removeHandler(handler)


@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()], ids=["terminal", "file"])
def test_a_log_record_during_progress_gets_a_line_of_its_own(
    stream: io.StringIO, root_writing_to: list[logging.Handler]
) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logging.getLogger().addHandler(handler)
    root_writing_to.append(handler)
    log = logging.getLogger("test.progress")
    log.setLevel(logging.INFO)
    with ProgressLine(stream) as line:
        line.show("  demo: 1 of 9 requests answered")
        log.warning("something happened")
        line.show("  demo: 5 of 9 requests answered")
        line.done("  demo: 9 of 9 requests answered")
    shown = screen(stream.getvalue())
    assert "LOG something happened" in shown
    for text in shown:
        assert not ("demo:" in text and "LOG" in text), shown
    assert shown[-1] == "  demo: 9 of 9 requests answered"
    assert not any(isinstance(f, ProgressLine) for f in handler.filters)  # removed at exit
