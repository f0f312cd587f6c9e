"""Log lines no input can forge (issue 46): a process set up as ``eventfleet`` sets up its logging
(``configure_logging``) logs values holding every kind of line break and control character, in a
message and in exceptions' messages; its stderr is read as an operator's tools read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from workers.logs import escape

HOSTILE = "x\n2001-01-01 00:00:00,000 CRITICAL workers.door: admin signed in"
BREAKS = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e", "\x00",
          "\x1b[2J", "\x7f", "\x9b", "\t"]  # fmt: skip
SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    from workers.cli.entry import configure_logging
    from workers.runtime.settings import Settings

    configure_logging(Settings.from_env(), "worker")
    hostile, breaks = sys.argv[1], json.loads(sys.argv[2])
    log = logging.getLogger("workers.door")
    log.warning("invalid tracestate member %s", hostile)
    for char in breaks:
        log.info("client %s", f"a{char}{hostile}")
    try:
        try:
            raise KeyError(hostile)
        except KeyError as e:
            raise ValueError(f"command_id {hostile}\\u2028and more") from e
    except ValueError:
        log.exception("failed for %s", hostile)
    log.info("done", stack_info=False)
    """
)


def run(log_format: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
    env |= {"EVENTFLEET_LOG_FORMAT": log_format, "EVENTFLEET_LOG_LEVEL": "info"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, HOSTILE, json.dumps(BREAKS)], env=env, capture_output=True,
        timeout=60, check=True,
    )  # fmt: skip
    return done.stderr.decode()


def test_text_lines_are_the_fleets_own_whatever_a_value_holds() -> None:
    out = run("text")
    lines = out.split("\n")
    assert not [line for line in lines if line.startswith("2001-")]  # no line of theirs
    # the warning, each client, the failure, and the two exception messages of its traceback
    assert sum("admin signed in" in line for line in lines) == len(BREAKS) + 4
    for line in out.splitlines():  # also as a reader that splits at U+2028, NEL, VT …
        assert not line.startswith("2001-"), line
    assert "client a\\nx\\n2001-01-01" in out and "client a\\u2028x\\n2001" in out
    assert "client a\\x1b[2Jx" in out and "client a\\x00x" in out and "client a\\tx" in out
    # A traceback keeps its frames' lines; each exception's message is one escaped line.
    assert "\nTraceback (most recent call last):\n  File " in out
    assert "\nValueError: command_id x\\n2001-01-01 00:00:00,000 CRITICAL workers.door: admin " \
           "signed in\\u2028and more\n" in out  # fmt: skip
    assert "\nKeyError: 'x\\n2001" in out  # repr, as Python writes a KeyError
    assert out.endswith("done\n")


def test_json_lines_are_one_object_each_and_decode_to_the_value() -> None:
    out = run("json")
    lines = out.splitlines()  # splits at U+2028 and NEL too: none is left raw
    records = [json.loads(line) for line in lines]
    assert len(records) == len(BREAKS) + 3 == len(out.split("\n")) - 1
    assert records[0]["message"] == f"invalid tracestate member {HOSTILE}"
    assert [r["message"] for r in records[1 : len(BREAKS) + 1]] == [
        f"client a{char}{HOSTILE}" for char in BREAKS
    ]  # escaped on the line, exact once decoded
    assert "ValueError: command_id x\n2001" in records[-2]["exception"]
    for raw in ("\u2028", "\u2029", "\x85", "\x9b", "\x7f"):
        assert raw not in out


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("a\nb", "a\\nb"), ("\r", "\\r"), ("\u2028", "\\u2028"), ("\x85", "\\x85"), ("é ok", "é ok")],
)
def test_escape_names_each_character(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
