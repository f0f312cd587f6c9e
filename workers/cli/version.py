"""The installed package's version, read from its metadata: imports nothing of the fleet, so
``eventfleet --version`` answers before anything heavy is loaded."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("eventfleet")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
