"""The command ledger: claims a command id and marks its aggregate in one call, and keeps what
became of each command (its outcome, or "unknown") so a retry is told the truth.

Each request has a token; a claim names it, so only the request holding a claim can release
it. Writes that only help a later request (an outcome, a release, a restore) are best effort:
a lost one makes a retry ask the store, which the derived event id makes safe.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

from topics.errors import Unavailable
from workers.ports import CommandMemory, CommandRecord, Marker, MarkRequest, MarkResult
from workers.retries import Backoff
from workers.roles.outcomes import Accepted, Refused, Stored, encode

log = logging.getLogger(__name__)

_tokens = itertools.count(1)
_PROCESS = f"{os.getpid():x}"


def new_token() -> str:
    """A token no other request of any process uses (process id and a counter)."""
    return f"{_PROCESS}.{next(_tokens):x}"


class ClaimHeld(Exception):
    """Another request holds the command's claim: tried again on ``claim_waits``."""


def claim_waits(answer_wait_s: float) -> Backoff:
    """How a request waits for the answer of another that holds its command's claim: claimed
    again after 5 ms doubling up to 100 ms, no new try after ``answer_wait_s`` (then refused:
    ``command_in_progress``)."""
    return Backoff(first_s=0.005, max_s=0.1, timeout_s=answer_wait_s)


def in_progress(command_id: str | None) -> Refused:
    """The answer when another request still held the claim after the wait."""
    message = f"command {command_id} is still being processed; retry later."
    return Refused("command_in_progress", message)


class CommandLedger:
    """Claims, marks, outcomes and releases, over the marker and the command memory."""

    def __init__(self, marker: Marker, memory: CommandMemory) -> None:
        self.marker = marker
        self.memory = memory
        self.claim_and_mark: Callable[[MarkRequest], Awaitable[MarkResult]] = marker.check_and_mark
        """One round trip: the command's claim (with a command id) and the mark. The
        marker's own method, bound here: a method of ours around it was a frame more on the
        hot path of every command."""

    async def claim(
        self, aggregate_key: str, command_id: str, event_id: str, token: str
    ) -> CommandRecord | None:
        """Claim a command without marking (sync mode): None when the claim is ours."""
        return await self.memory.claim(aggregate_key, command_id, event_id, token)

    async def settle(
        self, aggregate_key: str, command_id: str | None, outcome: Accepted | Stored | Refused
    ) -> None:
        """Record the command's outcome (kept for the command TTL)."""
        if command_id is not None:
            await _best_effort(
                self.memory.settle(aggregate_key, command_id, encode(outcome)),
                f"outcome of command {command_id} not recorded",
            )

    async def unknown(self, aggregate_key: str, command_id: str | None, event_id: str) -> None:
        """The event was sent without an answer: record it as unknown (by id and command)."""
        await _best_effort(
            self.memory.unknown(aggregate_key, command_id, event_id),
            f"event {event_id} not recorded as unknown (its claim expires by itself)",
        )

    async def release(self, aggregate_key: str, command_id: str | None, token: str) -> None:
        """Nothing was written: let the next request with this command id claim it."""
        if command_id is not None:
            await _best_effort(
                self.memory.release(aggregate_key, command_id, token),
                f"command {command_id} not released (its claim expires by itself)",
            )

    async def refused(self, aggregate_key: str, command_id: str, outcome: Refused) -> None:
        """Keep a refusal at the door for the outcome query (the command TTL), apart from the
        claim: a retry with the command id is judged again."""
        await _best_effort(
            self.memory.refused(aggregate_key, command_id, encode(outcome)),
            f"refusal of command {command_id} not recorded",
        )

    async def restore(self, request: MarkRequest, marked: MarkResult) -> None:
        """The produce failed before Kafka took the event: put the previous mark back."""
        if marked.status == "marked":
            await _best_effort(
                self.marker.restore(replace(request, command_id=None), marked),
                f"mark of {request.aggregate_key} not restored after a failed produce",
            )


async def _best_effort(call: Awaitable[None], what: str) -> None:
    try:
        await call
    except Unavailable as e:
        log.warning("%s: %s", what, e)
