"""The public API of workers.storage is what __all__ says, and each name is importable."""

from __future__ import annotations

import workers.storage


def test_every_exported_name_exists_and_nothing_private_leaks() -> None:
    for name in workers.storage.__all__:
        assert getattr(workers.storage, name) is not None
        assert not name.startswith("_")
    assert "EventSourcedStorage" in workers.storage.__all__
    assert workers.storage.EventSourcedStorage.__module__ == "workers.storage.storage"
