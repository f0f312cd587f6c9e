"""The directories ``eventfleet dev`` runs in, and what a shell still holding an ended run's
export block is told: that the stack is not running, not that a key file cannot be read."""

from __future__ import annotations

from pathlib import Path, PurePath

from topics.errors import EventfleetError
from workers.runtime.settings import Settings, env_name

RUN_PREFIX = "eventfleet-dev-"
"""Every run directory's name starts so (``tempfile.mkdtemp(prefix=RUN_PREFIX)``)."""


class DevRunEnded(EventfleetError):
    """The environment names files of an ``eventfleet dev`` run that has ended."""


def run_of(value: str) -> PurePath | None:
    """The dev run directory a path lies in, or None."""
    path = PurePath(value)
    for depth, part in enumerate(path.parts):
        if part.startswith(RUN_PREFIX) and depth + 1 < len(path.parts):
            return PurePath(*path.parts[: depth + 1])
    return None


def check_dev_run(settings: Settings) -> None:
    """Raise DevRunEnded when a setting given in the environment names a file of a dev run whose
    directory is gone: that run, and the stack it started, has stopped."""
    for name in sorted(settings.explicit):
        value = getattr(settings, name, None)
        run = run_of(value) if isinstance(value, str) and value.startswith("/") else None
        if run is not None and not Path(run).is_dir():
            raise DevRunEnded(
                f"the dev stack is not running: {env_name(name)}={value!r} is a file of an "
                f"`eventfleet dev` run that has ended ({run} is gone), as are the services its "
                "export block names. Start `eventfleet dev` again and paste the export block it "
                "prints, or use a shell without the old one."
            )
