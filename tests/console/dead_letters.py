"""Dead letters as the replay tests build them: a record of the dead-letter topic (``letter``)
around an event, the command path the replayer submits to (``Commands``: it records requests
and answers a fixed outcome), and the replayer itself (``replayer``)."""

from __future__ import annotations

from datetime import UTC, datetime

from topics.envelope import new_event
from workers.adapters.memory import MemoryActionLog
from workers.ports import Record
from workers.roles.command.requests import CommandRequest
from workers.roles.ops.dlq_replay import DeadLetterReplayer
from workers.roles.outcomes import Accepted, Outcome
from workers.runtime.answers import answer_of

STORED = "t.events.stored"
EVENT = new_event("order", "o-1", "OrderPlaced", {"items": []})


def letter(
    value: bytes, *, offset: int = 3, source: str = "t.events/1/7", reason: str = "invalid_data",
    role: str = "appender",
) -> Record:  # fmt: skip
    """A record of the dead-letter topic holding ``value``, with the headers the fleet writes."""
    headers = [
        ("correlation_id", b"c"),
        ("dlq_reason", reason.encode()),
        ("dlq_detail", b"items must not be empty"),
        ("dlq_source", source.encode()),
        ("dlq_role", role.encode()),
    ]
    return Record("t.events.dlq", 0, offset, b"order:o-1", value, headers)


class Commands:
    """The command path as the replayer sees it: records requests, answers a fixed outcome."""

    def __init__(self, answer: Outcome | Exception = Accepted("e")) -> None:
        self.requests: list[CommandRequest] = []
        self.answer = answer

    async def handle(self, request: CommandRequest) -> Outcome:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def replayer(commands: Commands, log: MemoryActionLog) -> DeadLetterReplayer:
    """The console's replayer, submitting to ``commands`` and logging to ``log``."""
    return DeadLetterReplayer(
        submit=commands.handle, render=answer_of, log=log, stored_topic=STORED, via="console",
        max_bytes=65536,
        now=lambda: datetime(2026, 1, 2, tzinfo=UTC),
    )  # fmt: skip
