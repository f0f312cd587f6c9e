"""``python -m workers.cli``: the same as the ``eventfleet`` command."""

from __future__ import annotations

from workers.cli import main

raise SystemExit(main())
