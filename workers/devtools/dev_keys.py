"""``eventfleet dev``'s master key: 32 random bytes made per run in its run directory.

Dev seals personal fields like a deployment does, so it needs a master key; unless the
environment names one (EVENTFLEET_MASTER_KEY_FILE or _ENV), it writes a fresh one (mode 0600)
beside its other run files and points the settings at it. The key, and with it every data key
it wrapped, dies with the run directory — as the embedded stack's data does.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from workers.runtime.settings import Settings

KEY_FILE = "dev-master-key"


def dev_master_key(directory: Path, settings: Settings) -> Settings:
    """``settings`` with a per-run master key file, unless the user chose a master key."""
    if {"master_key_file", "master_key_env"} & set(settings.explicit):
        return settings
    path = directory / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(base64.b64encode(os.urandom(32)) + b"\n")
    return settings.model_copy(update={"master_key_file": str(path)})
