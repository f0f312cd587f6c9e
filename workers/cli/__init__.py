"""The ``eventfleet`` command."""

from __future__ import annotations

from workers.cli.main import main, parser

__all__ = ["main", "parser"]
