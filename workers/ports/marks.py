"""The fast early answers (Redis): the marker, the command memory, and the tickets of live
routes; the values they move."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from topics.errors import TooManyTickets
from topics.frozen import slot_init
from workers.ports.budgets import BudgetDraw
from workers.ports.store import Head

UNKNOWN = "?"
"""``MarkRequest.fallback``: the store was not asked; a missing mark answers ``missing``."""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What the command memory holds for one command id.

    ``pending``: a request holds the claim (``token`` names it); ``unknown``: its write was
    sent without an answer (a retry may take the claim over); ``answered``: ``answer`` is the
    command's recorded outcome (encoded by the command side, updated by the appender when the
    store refuses the event).
    """

    state: str
    event_id: str = ""
    answer: bytes = b""
    token: str = ""
    command_id: str = ""  # by event id (``recall_event``): the scoped command id it was sent for
    age_s: float | None = None  # by event id: seconds since it was recorded


@slot_init
@dataclass(frozen=True, slots=True)
class MarkRequest:
    """One check-and-mark: may ``event_type`` follow the marked type, given ``allowed``, and is
    the aggregate at ``expected_version`` as far as the marker knows?

    ``allowed`` holding ``ANY`` (``"*"``) accepts any marked type: the mark is still set.

    ``fallback`` is used when the aggregate has no mark: ``UNKNOWN`` (answer ``missing``,
    the caller then reads the store), ``NEW_AGGREGATE`` (the store holds no event: version
    0), or the store's head as ``<type>|<event id>|<version>`` (``|<version>`` may be left
    out: the version is then not known). ``replace``: a mark value the store showed to be
    stale; if the mark still equals it, it counts as missing (and ``fallback`` decides).

    ``expected_version`` (None: none) is checked first, against the version the marker
    knows: the version of the marked event, counted by the marker (each event it marks is
    one more than the one before it, from the store's head or 0 when it learned none).
    Where the marker knows no version (a mark written without one), the event is marked
    without the check, and the store judges it alone.

    ``command_id`` claims the command in the same call (``token`` names this request's
    claim): a recorded answer, or a claim another request holds, is returned instead of
    marking (``answered``, ``busy``); an ``unknown`` record is taken over (``takeover``).

    ``budget`` draws the write from its principal's budget first, in the same call: over it,
    the answer is ``over_budget`` and nothing is claimed or marked.
    """

    aggregate_key: str
    event_type: str
    event_id: str
    allowed: Sequence[str]
    fallback: str = UNKNOWN
    command_id: str | None = None
    token: str = ""
    replace: str = ""
    expected_version: int | None = None
    budget: BudgetDraw | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class MarkResult:
    """What the marker did.

    ``status``: ``marked`` (this event is now the mark), ``mine`` (the mark already names this
    event: a retry of it), ``wrong_version`` (the marker counts ``version``, not the request's
    ``expected_version``), ``rejected`` (``current`` may not be followed by the event type),
    ``missing`` (no mark and no fallback: read the store and ask again), ``answered`` (the
    command has a recorded answer: ``record``), ``busy`` (another request holds the
    command's claim) or ``over_budget`` (the principal's budget holds no write for
    ``retry_after_ms``; nothing was claimed or marked). ``after`` is the id of the event it
    was validated after (``NEW_AGGREGATE`` for the first event); ``current`` is the type it
    was checked against (None: a new aggregate). ``previous`` is the mark value that was there (for
    ``restore`` and ``replace``; empty when it was replaced as stale). ``takeover``: the claim was
    taken over from an earlier attempt whose outcome is unknown. ``version``: the aggregate's
    version before this event as the marker counts it (None: it knows none; on ``mine``,
    ``answered`` and ``busy`` it is not read). A count, not the truth: it is right only if
    every marked event before it is stored.
    """

    status: str
    after: str = ""
    current: str | None = None
    previous: str = ""
    record: CommandRecord | None = None
    takeover: bool = False
    version: int | None = None
    retry_after_ms: int = 0


class MarkPeek(Protocol):
    """Reads an aggregate's mark without changing it: (event type, event id), or None.

    The mark names the newest event the command door accepted on the aggregate; the store may
    not hold it yet (the appender's lag), or ever (a produce whose failure left the mark).
    Raises MarkerUnavailable when Redis does not answer.
    """

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None: ...


class Marker(Protocol):
    """The fast early answer: an aggregate's marked latest event, checked and set atomically.

    Of two concurrent conflicting requests on one key exactly one is marked (two requests with
    the same expected version conflict: the first one marked moves the count). A mark lives for
    the marker TTL and is rolled back only when its event is known not to be stored: the
    produce failed before Kafka took it (``restore``), or the store refused it (``repair``);
    a mark the store shows to be stale is replaced through ``MarkRequest.replace``. The
    marker is a cache; the store is the judge. Every call raises MarkerUnavailable when
    Redis does not answer (the call may still have been applied).
    """

    async def check_and_mark(self, request: MarkRequest) -> MarkResult: ...

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        """Nothing was sent: put ``marked.previous`` back, only if the mark still names
        ``request.event_id``."""
        ...

    async def repair(self, aggregate_key: str, rejected_id: str, head: Head | None) -> None:
        """The store refused event ``rejected_id``: if the mark names it, mark ``head`` instead
        (with its version).

        May return before Redis applied it: a mark left wrong is only a wrong early answer.
        """
        ...

    async def note_aggregates(self, aggregate_keys: Sequence[str]) -> None:
        """The store now holds events of these aggregates (for the new-aggregate filter).

        May return before Redis applied it: a missed note only costs a store read.
        """
        ...

    async def filter_ready(self) -> bool:
        """Whether the new-aggregate filter knows every aggregate the store holds.

        Only a ready filter answers "certainly new" (no store read for a new aggregate). A
        lost filter is not ready; neither is one built on another run of the server (Redis
        restarted from a dump, or a replica took over: it may lack recent notes).
        """
        ...

    async def mark_filter_ready(self) -> None:
        """Every aggregate the store holds has been noted (after a rebuild) on this run."""
        ...

    async def forget_filter(self) -> None:
        """Stop answering "certainly new" until the filter is rebuilt."""
        ...

    async def peek(self, aggregate_key: str) -> tuple[str, str] | None:
        """The mark's (event type, event id), read only; None when there is none."""
        ...

    async def ping(self) -> bool: ...


class CommandMemory(Protocol):
    """Remembers each command id's outcome, so a repeated request learns what became of it.

    Command ids arrive in their sender's scope (``topics.envelope.command_scope``): two
    principals' equal ids are two keys.

    A claim is held for a short bound only; an outcome is kept for the command TTL. Raises
    MarkerUnavailable when Redis does not answer.
    """

    async def claim(
        self, aggregate_key: str, command_id: str, event_id: str, token: str
    ) -> CommandRecord | None:
        """Claim the id for request ``token``: None if claimed now (or held by it already);
        else what is there (``pending`` of another request, or ``answered``).

        An ``unknown`` record is taken over (the caller holds the claim now) and returned,
        so the caller knows an earlier attempt may have been written.
        """
        ...

    async def recall(self, aggregate_key: str, command_id: str) -> CommandRecord | None: ...

    async def recall_event(self, aggregate_key: str, event_id: str) -> CommandRecord | None:
        """An event sent without an answer (recorded by ``unknown``), by its id, with its
        ``age_s`` and the ``command_id`` it was sent for; or what it was resolved to."""
        ...

    async def resolve(
        self,
        aggregate_key: str,
        event_id: str,
        *,
        answer: bytes,
        command_answer: bytes | None,
        min_age_s: float,
    ) -> bool:
        """Replace the unknown record of ``event_id`` with ``answer`` (the log showed its fate),
        only while it is still that unknown attempt and at least ``min_age_s`` old: a newer
        attempt (a retry holding the command's claim, or unknown again since) is left alone.
        Its command's record, while unknown, becomes ``command_answer`` (None: forgotten, so
        a retry with the command id sends it again). True when it was replaced; calling it
        again changes nothing."""
        ...

    async def settle(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """Keep ``answer`` as the command's outcome for the command TTL.

        May return before Redis applied it: a lost answer only lets a retry ask the store.
        """
        ...

    async def unknown(self, aggregate_key: str, command_id: str | None, event_id: str) -> None:
        """The event was sent without an answer: it may still be stored. Recorded by event id
        (and by command id, unless an answer is recorded) for the command TTL; the next
        request with the command id may take the claim over."""
        ...

    async def release(self, aggregate_key: str, command_id: str, token: str) -> None:
        """Nothing was written: forget the claim of request ``token`` (only if still its)."""
        ...

    async def refused(self, aggregate_key: str, command_id: str, answer: bytes) -> None:
        """The command was refused at the door (nothing written; its claim is released, so a
        retry is judged again): keep ``answer`` for the command TTL, apart from its claim,
        for the outcome query. The newest refusal replaces an older one.

        May return before Redis applied it: a lost refusal only makes the query answer none.
        """
        ...

    async def recall_refusal(self, aggregate_key: str, command_id: str) -> bytes | None:
        """The command's last refusal at the door (``refused``), or None."""
        ...


# --- tickets: single-use credentials for browsers on live routes ----------------------------


@dataclass(frozen=True, slots=True)
class TicketLimits:
    """How many ticket records a ``TicketStore`` holds at most: per principal, and in all."""

    per_principal: int = 100
    max_held: int = 20_000

    def __post_init__(self) -> None:
        if self.per_principal < 1 or self.max_held < 1:
            raise ValueError(f"ticket limits must be at least 1, not {self}")

    def refusal(self, limit: str, wait_ms: int) -> TooManyTickets:
        """The refusal of a put over ``limit`` (``principal`` or ``fleet``) whose oldest record
        counted leaves in ``wait_ms``."""
        retry_after_s = max(1, math.ceil(wait_ms / 1000))
        if limit == "principal":
            message = (
                f"this principal holds {self.per_principal} tickets already "
                "(EVENTFLEET_TICKETS_PER_PRINCIPAL; each counts for as long as Redis keeps it, "
                "minutes past its expiry): no ticket was issued; open a connection with one you "
                f"hold, or ask again in {retry_after_s} s."
            )
        else:
            message = (
                f"the fleet holds {self.max_held} tickets, its bound "
                "(EVENTFLEET_TICKETS_MAX_HELD): no ticket was issued; ask again in "
                f"{retry_after_s} s."
            )
        return TooManyTickets(message, limit=limit, retry_after_s=retry_after_s)


class TicketStore(Protocol):
    """Ticket records by digest, shared by every process of a fleet (a ticket asked at one
    process opens a connection at any other), each spent at most once fleet-wide.

    What it holds is bounded (``TicketLimits``): each principal at most its share of records
    at once (``per_principal``), the fleet at most ``max_held`` (a record counts until
    ``keep_s`` after it was put, spent or not). Moves records only (``workers.http.tickets`` makes
    and reads them). Raises MarkerUnavailable when the backend does not answer.
    """

    async def put(
        self, digest: str, record: bytes, *, keep_s: int, principal: str | None = None
    ) -> None:
        """Keep ``record`` under ``digest`` for ``keep_s`` seconds, counted against
        ``principal``'s share (None: the fleet's total only).

        Raises TooManyTickets (``limit``: ``principal`` or ``fleet``, ``retry_after_s``: until
        the oldest record counted leaves) when either is full; nothing is kept then.
        """
        ...

    async def find(self, digest: str) -> bytes | None:
        """The record kept under ``digest``; None when none is (never put, or forgotten)."""
        ...

    async def spend(self, digest: str, *, keep_s: int) -> bool:
        """Mark ``digest`` spent: True for the first call fleet-wide (atomic), False for every
        later one while the mark is kept (``keep_s`` seconds), and False for a digest with no
        record (so there is never a spent mark without its record)."""
        ...
