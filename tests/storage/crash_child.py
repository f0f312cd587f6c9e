"""A process that starts one storage change and dies by SIGKILL at a named point in it.

Run as ``python -m tests.storage.crash_child <mongo_url> <database> <transactions> <point>``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from bson import json_util

from workers.adapters.mongo import MongoDocuments, connect, database
from workers.storage import EventSourcedStorage, FaultPoint


async def main(url: str, name: str, transactions: bool, point: str) -> None:
    def die(reached: FaultPoint) -> None:
        if reached.point == point:
            # The parent needs the transaction's session to end it (as the server would later).
            print(f"dying at {point} {json_util.dumps(reached.session_id)}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    client = connect(url, timeout_ms=10_000)
    games = EventSourcedStorage(
        MongoDocuments(database(client, name), "games", transactions=transactions, fault_hook=die)
    )
    await games.find_one_and_update("g1", lambda g: {**g, "gold": g["gold"] + 1}, client_id="child")
    print("the change completed: the fault point was never reached", flush=True)


if __name__ == "__main__":
    url, name, transactions, point = sys.argv[1:]
    asyncio.run(main(url, name, transactions == "true", point))
