"""The master key every test fleet runs with: random per test session, never a fixed one.

Worker processes read it from ``TEST_MASTER_KEY`` (named by EVENTFLEET_MASTER_KEY_ENV); it is
also set in this process's environment, so in-process settings can name it the same way.
"""

from __future__ import annotations

import base64
import os

TEST_MASTER_KEY_VARIABLE = "TEST_MASTER_KEY"
TEST_MASTER_KEY = base64.b64decode(
    os.environ.setdefault(TEST_MASTER_KEY_VARIABLE, base64.b64encode(os.urandom(32)).decode())
)


def master_key_env() -> dict[str, str]:
    """The environment of a worker that wraps its data keys with the session's master key."""
    return {
        "EVENTFLEET_MASTER_KEY_ENV": TEST_MASTER_KEY_VARIABLE,
        TEST_MASTER_KEY_VARIABLE: os.environ[TEST_MASTER_KEY_VARIABLE],
    }
