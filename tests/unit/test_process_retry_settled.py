"""When `eventfleet pm retry --wait` has an outcome to report: an instance the role took but
whose outbox it is still sending is under way, not fixed (found by CI: the CLI said ``active``
between the role's write and the command's refusal)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from workers.ports import ACTIVE, DONE, RETRYING, STUCK, Instance, PendingCommand
from workers.roles.process.desk import retry_settled

NOW = datetime(2026, 11, 26, tzinfo=UTC)
BASE = Instance("deliverer", "o-1", 3, ACTIVE, None, NOW, NOW)
SEND = PendingCommand("c-1", "order", "o-1", "OrderDelivered", {}, "e-1")


@pytest.mark.parametrize(
    ("status", "outbox", "settled"),
    [
        (RETRYING, (), False),  # asked, not yet taken
        (RETRYING, (SEND,), False),
        (ACTIVE, (SEND,), False),  # taken, its command not yet answered
        (DONE, (SEND,), False),
        (ACTIVE, (), True),  # taken and sent: fixed
        (DONE, (), True),
        (STUCK, (SEND,), True),  # refused again
        (STUCK, (), True),
    ],
)
def test_a_retry_settles_when_stuck_again_or_sent(
    status: str, outbox: tuple[PendingCommand, ...], settled: bool
) -> None:
    assert retry_settled(replace(BASE, status=status, outbox=outbox)) is settled
