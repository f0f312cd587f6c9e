"""The worker process's cyclic garbage collector: rare while it starts, then tuned for a
process that allocates per record.

A start builds what lives as long as the process (some 1,300 modules, the Faust app, the
clients): with Python's defaults (a collection every 700 allocations of container objects)
the collector walked it about 300 times while the modules loaded, ~0.15 s of CPU of every
start. ``collect_rarely`` runs first; ``freeze_loaded``, once the modules are imported, keeps
them out of every later collection; ``collect_less``, once the process has started, collects
what the start left, freezes what it built and sets the threshold the process runs with.
``EVENTFLEET_GC_THRESHOLD=0`` leaves Python's collector as it comes: none of them is called.
"""

from __future__ import annotations

import gc

STARTING_THRESHOLD = 100_000
"""Allocations between collections while a worker starts: a few collections instead of ~300,
and still some while a start waits long for its brokers (each failed attempt leaves cycles)."""

_before: tuple[int, int, int] | None = None
"""The thresholds ``collect_rarely`` replaced, for ``collect_less(0)``."""


def collect_rarely() -> None:
    """Collect every ``STARTING_THRESHOLD`` allocations until ``collect_less``."""
    global _before
    if _before is None:
        _before = gc.get_threshold()
    gc.set_threshold(STARTING_THRESHOLD, *_before[1:])


def freeze_loaded() -> None:
    """Keep what the imports built (modules, classes, functions: ~130,000 objects, of which a
    collection then finds a few dozen garbage) out of every later collection: the start's
    own, and the full one ``collect_less`` makes at its end."""
    gc.freeze()


def collect_less(threshold: int) -> None:
    """Python's cyclic garbage collector, tuned for a worker that allocates per record.

    With Python's defaults (a collection every 700 allocations of container objects, every
    tenth of them older too) an appender spent ~10% of its CPU collecting under py-spy, and
    each full collection walked every object of the process: modules, the Faust app, the
    clients, its caches of heads and ids. What the process built to start is frozen out of
    collections (it lives as long as the process), and a collection comes every
    ``threshold`` allocations; most of a batch's garbage has no cycles and is freed at once
    by reference counting anyway. 0 keeps Python's defaults (those before ``collect_rarely``).
    """
    global _before
    before, _before = _before, None
    if threshold <= 0:
        if before is not None:
            gc.set_threshold(*before)
        return
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(threshold, *gc.get_threshold()[1:])
