"""Read your writes: a query that names what it must see waits for it to be stored, bounded.

``GET …/state``, ``/events`` and the domains' view routes take ``min_version=N`` (or the
``command_id`` of an accepted command) and ``wait_ms``. An async append is answered ``202``
before the appender stores it; a client that reads right after asks "answer once version N
(my command's event) is stored": ``200`` with it, ``409 refused`` with the store's refusal, or
``504 not_yet_stored`` when ``wait_ms`` ran out.

A read checks the store once when it comes (the reads of one aggregate that come together
share that check, one head read at a time: ``heads``); only if it must wait does it become a
waiter, and waiters are bounded: at most ``max_waiters`` per process and ``max_per_principal`` per
principal (``TooManyWaiters``: ``429 too_many_waiters`` with ``Retry-After``). A waiter never
reads the store itself. The waiters of one aggregate share one watch: one listener on the live
feed (the appender, in any process, announces what it stored; an announced event that is the
version or the command's event wakes its waiters with no store read) and one store check for
them all, when a waiter arrives, once the feed confirmed the subscription, when the feed says
it may have missed announcements, and on the process's tick (every ``poll_s``, at least
``poll_s`` apart) as the safety net for a lost one. One task per process runs those checks, the
heads of every due aggregate ``CHUNK`` at a time (other requests never queue behind many of
its lookups), so the store sees at most one check per aggregate per ``poll_s`` however many
wait on it, and every aggregate's in the same round; the safety net reads at most
``SAFETY_PER_TICK`` aggregates a tick (with more, each in turn).
Without a feed (or while it fails) a watch is checked on a backoff from 2 ms up to ``poll_s``.
A view has no announcement of its own (its projection folds after the store): the waiters of
one view document share one read of it, on the same backoff. A waiter whose client left is
released within a second (``SWEEP_S``).

``reads`` holds what a read asks and how a wait ends unanswered; ``waiter`` the per-process
waiter the routes call and the query context that waits; ``heads`` the arrival check shared by
the reads of one aggregate; ``waits`` the watches and the one task that checks the store for them.
"""

from __future__ import annotations

from workers.http.ryw.reads import (
    CHUNK,
    DEFAULT_WAIT_MS,
    MAX_WAIT_MS,
    NOBODY,
    Caller,
    NotYetStored,
    ReadAfter,
    RefusedAtStore,
    TooManyWaiters,
    WaitBounds,
)
from workers.http.ryw.waiter import WaitingContext, WriteWaiter

__all__ = [
    "CHUNK",
    "DEFAULT_WAIT_MS",
    "MAX_WAIT_MS",
    "NOBODY",
    "Caller",
    "NotYetStored",
    "ReadAfter",
    "RefusedAtStore",
    "TooManyWaiters",
    "WaitBounds",
    "WaitingContext",
    "WriteWaiter",
]
