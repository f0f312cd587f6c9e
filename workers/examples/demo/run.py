"""``eventfleet dev --demo``: a realistic mixed workload against the HTTP API, then proof it held.

Orders go through their lifecycle (with some invalid transitions; some are left unpaid, and the
``order_lifecycle`` process manager cancels them at their payment deadline and requests the
shipment of the paid ones), accounts race withdrawals, chat rooms send, edit and delete. At the
end the demo checks that the store, the views and the downstream topics agree with exactly what
it was told was accepted and what the process manager had to do, prints a summary, and fails
(exit 1) on any disagreement.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from topics.jsonvalue import JsonObject
from workers.examples.demo.client import DemoClient, Tally
from workers.examples.demo.progress import ProgressLine
from workers.examples.demo.verify import summary, verify
from workers.runtime.fleet import Fleet

ITEMS = [{"sku": "tea", "qty": 2, "price": 3.5}, {"sku": "cup", "qty": 1, "price": 9.0}]


Step = tuple[str, JsonObject]  # (event type, data): one request


def order_plan(rng: random.Random, *, unpaid: bool = False) -> list[Step]:
    """An order's requests, drawn up front so the demo knows exactly how many it will send;
    ``unpaid``: placed and left so (its process manager cancels it at its payment deadline)."""
    steps: list[Step] = [("OrderPlaced", {"items": ITEMS})]
    if unpaid:
        return steps
    if rng.random() < 0.2:
        steps.append(("OrderShipped", {"carrier": "ups"}))  # invalid: not paid yet
    if rng.random() < 0.15:
        steps.append(("OrderCancelled", {"reason": "changed mind"}))
        steps.append(("OrderPaid", {"amount": 16}))  # invalid: cancelled
        return steps
    return [
        *steps,
        ("OrderPaid", {"amount": 16}),
        ("OrderShipped", {"carrier": "dhl"}),
        ("OrderDelivered", {}),
    ]


def chat_plan(room_id: str, rng: random.Random) -> list[Step]:
    """Sends, edits and deletes of one room (each edit or delete names a message sent before)."""
    steps: list[Step] = []
    messages: list[tuple[str, str]] = []
    for i in range(12):
        sender = rng.choice(("ada", "bob", "cy"))
        message_id = f"{room_id}-m{i}"
        content = f"hello {i} from {sender}"
        steps.append(
            ("MessageSent", {"message_id": message_id, "sender_id": sender, "content": content})
        )
        messages.append((message_id, sender))
        if rng.random() < 0.3:
            edited_id, edited_sender = rng.choice(messages)
            steps.append(
                (
                    "MessageEdited",
                    {"message_id": edited_id, "sender_id": edited_sender, "content": f"edited {i}"},
                )
            )
        if rng.random() < 0.2:
            deleted_id, deleted_sender = messages.pop(0)
            steps.append(
                ("MessageDeleted", {"message_id": deleted_id, "sender_id": deleted_sender})
            )
    return steps


ACCOUNT_REQUESTS = 8  # opened, deposited, six racing withdrawals
UNPAID_EVERY = 8
"""Every eighth order is left unpaid: the process manager's payment deadline cancels it."""


async def story(
    client: DemoClient, aggregate_type: str, aggregate_id: str, steps: list[Step]
) -> None:
    for event_type, data in steps:
        await client.append(aggregate_type, aggregate_id, event_type, data)


async def account_story(client: DemoClient, account_id: str, rng: random.Random) -> None:
    await client.append("account", account_id, "AccountOpened", {"owner": account_id})
    deposit = rng.choice((50, 100, 150))
    await client.append("account", account_id, "MoneyDeposited", {"amount": deposit})
    # Racing withdrawals that together exceed the balance: some must be refused.
    statuses = await asyncio.gather(
        *(client.append("account", account_id, "MoneyWithdrawn", {"amount": 30}) for _ in range(6))
    )
    client.tally.balances[account_id] = deposit - 30 * sum(1 for s in statuses if s == 201)


async def progress(tally: Tally, planned: int, stop: asyncio.Event) -> None:
    def text() -> str:
        return f"  demo: {tally.done} of {planned} requests answered"

    with ProgressLine(sys.stderr) as line:
        while not stop.is_set():
            line.show(text())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
        line.done(text())


async def run_demo(
    fleet: Fleet,
    *,
    scale: float = 1.0,
    seed: int = 7,
    token_for: Callable[[str], str] | None = None,
) -> tuple[bool, str]:
    """Drive the workload, wait for the pipeline to catch up, verify; (verified, summary).

    ``token_for(principal)``: a token the fleet trusts (each chat message is sent as its
    sender); None when the fleet's door is open."""
    rng = random.Random(seed)
    settings = fleet.runtime.settings
    tally = Tally()
    client = DemoClient(f"http://{settings.http_host}:{settings.http_port}", tally, token_for)
    run = f"{int(time.time()) % 100000:05d}"
    orders = {
        f"demo-{run}-o{i}": order_plan(rng, unpaid=i % UNPAID_EVERY == 0)
        for i in range(max(4, int(60 * scale)))
    }
    accounts = [f"demo-{run}-a{i}" for i in range(max(2, int(12 * scale)))]
    rooms = (
        {r: chat_plan(r, rng) for r in (f"demo-{run}-r{i}" for i in range(max(1, int(6 * scale))))}
        if "chat_room" in fleet.runtime.domains
        else {}
    )
    stories: list[Awaitable[None]] = [
        *(story(client, "order", o, steps) for o, steps in orders.items()),
        *(account_story(client, a, rng) for a in accounts),
        *(story(client, "chat_room", r, steps) for r, steps in rooms.items()),
    ]
    planned = (
        sum(map(len, orders.values()))
        + ACCOUNT_REQUESTS * len(accounts)
        + sum(map(len, rooms.values()))
    )
    stop = asyncio.Event()
    ticker = asyncio.create_task(progress(tally, planned, stop))
    started = time.perf_counter()
    try:
        await _bounded(stories, limit=32)
    finally:
        stop.set()
        await ticker
    elapsed = time.perf_counter() - started
    try:
        problems, facts = await verify(fleet, client, tally, list(rooms))
    finally:
        await client.close()
    latencies = sorted(tally.latencies_s)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    text = summary(
        tally, facts, elapsed, p50_ms=cuts[49] * 1000, p99_ms=cuts[98] * 1000, problems=problems
    )
    return not problems, text


async def _bounded(work: list[Awaitable[None]], *, limit: int) -> None:
    slots = asyncio.Semaphore(limit)

    async def one(item: Awaitable[None]) -> None:
        async with slots:
            await item

    await asyncio.gather(*(one(item) for item in work))
