"""The cost of sealing personal fields: the command path, the append path and a page read, with
encryption on and off, interleaved in one run (``python -m tests.bench.personal [N]``).

Measured in process on the memory adapters, so no network or store time dilutes it: the ratios
are the CPU share of sealing and opening at its largest. CPU per event is process time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable

from snapshot_rules.domain import Domains
from tests.bench import run_script
from tests.roles.pipeline import EVENTS, SETTINGS
from topics.envelope import decode
from workers.examples.domains.chat_room import CHAT_ROOM
from workers.metrics import create_metrics
from workers.roles.command.requests import CommandRequest
from workers.runtime.adapters import memory_adapters
from workers.runtime.compose import Runtime

CONTENT = "a chat message of ordinary length, with a few words in it " * 2


async def one_run(n: int, *, encrypted: bool) -> dict[str, float]:
    memory = memory_adapters()
    settings = SETTINGS.with_defaults(personal_data_encryption=encrypted)
    rt = await Runtime.start(
        settings, roles=("commands", "appender"), domains=Domains([CHAT_ROOM]),
        metrics=create_metrics(), adapters=memory.adapters(),
    )  # fmt: skip
    try:
        rooms = 20
        requests = [
            CommandRequest("chat_room", f"r{i % rooms}", "MessageSent",
                           {"message_id": f"m{i}", "sender_id": f"u{i % 200}", "content": CONTENT})
            for i in range(n)
        ]  # fmt: skip
        commands = await _timed(lambda: _all(rt.commands.handle(r) for r in requests), n)
        records = memory.stream.produced.records(EVENTS)
        assert len(records) == n
        appended = await _timed(lambda: rt.appender.handle(records), n)
        stored = await rt.events.select(("chat_room", "r0"), limit=100)
        assert len(stored) == min(100, n // rooms), len(stored)
        assert (decode(records[0].value).data["content"] != CONTENT) == encrypted
        rt.shredder._by_id.clear()  # a cold page: its keys are looked up once
        pages = 200
        read = await _timed(
            lambda: _all(rt.shredder.open_events(stored) for _ in range(pages)), pages * len(stored)
        )
        return {"commands": commands, "append": appended, "read": read}
    finally:
        await rt.stop()


async def _all(calls: object) -> None:
    for call in calls:  # type: ignore[attr-defined]
        await call


async def _timed(run: Callable[[], Awaitable[None]], n: int) -> float:
    cpu = time.process_time()
    await run()
    return (time.process_time() - cpu) / n * 1e6  # µs of CPU per event


async def main(n: int) -> None:
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    for _ in range(3):  # interleaved: on, off, on, off, ...
        for mode in ("on", "off"):
            results[mode].append(await one_run(n, encrypted=mode == "on"))
    print(f"personal-data sealing, {n} MessageSent per run, 3 runs each, interleaved; "
          "median CPU per event (µs) and events/s of one core")  # fmt: skip
    print(f"{'path':<10}{'off µs':>10}{'on µs':>10}{'on/off':>9}{'off ev/s':>11}{'on ev/s':>10}")
    for path in ("commands", "append", "read"):
        off = sorted(r[path] for r in results["off"])[1]
        on = sorted(r[path] for r in results["on"])[1]
        print(
            f"{path:<10}{off:>10.1f}{on:>10.1f}{on / off:>9.2f}{1e6 / off:>11.0f}{1e6 / on:>10.0f}"
        )


if __name__ == "__main__":
    run_script(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
