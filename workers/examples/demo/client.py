"""The demo's HTTP client and its tally of what was sent and what it was told."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from topics.jsonvalue import Json, JsonObject


@dataclass
class Tally:
    """What the demo sent and what it was told."""

    outcomes: Counter[str] = field(default_factory=Counter)
    accepted: dict[tuple[str, str], list[str]] = field(
        default_factory=dict
    )  # aggregate -> event ids
    latencies_s: list[float] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)
    done: int = 0

    def record(self, aggregate: tuple[str, str], status: int, body: Json) -> None:
        self.done += 1
        if status in (201, 202):
            self.outcomes["accepted"] += 1
            self.accepted.setdefault(aggregate, []).append(body["event_id"])
        else:
            reason = body.get("error", "?") if isinstance(body, dict) else "?"
            self.outcomes[f"{'rejected' if status < 500 else 'failed'}: {reason} ({status})"] += 1


class DemoClient:
    """A small HTTP client that records every answer in the tally."""

    def __init__(
        self, base_url: str, tally: Tally, token_for: Callable[[str], str] | None = None
    ) -> None:
        self.base_url = base_url
        self.tally = tally
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._token_for = token_for
        self._tokens: dict[str, dict[str, str]] = {}

    def _as(self, principal: str) -> dict[str, str]:
        """The Authorization header of ``principal`` (none when the fleet's door is open)."""
        if self._token_for is None:
            return {}
        if principal not in self._tokens:
            self._tokens[principal] = {"Authorization": f"Bearer {self._token_for(principal)}"}
        return self._tokens[principal]

    async def append(
        self, aggregate_type: str, aggregate_id: str, event_type: str, data: JsonObject
    ) -> int:
        started = time.perf_counter()
        url = f"{self.base_url}/v1/{aggregate_type}/{aggregate_id}/events"
        who = self._as(str(data.get("sender_id", "demo")))  # a chat message as its sender
        async with self.session.post(
            url,
            data=orjson.dumps({"type": event_type, "data": data}),
            headers={**who, "Content-Type": "application/json"},
        ) as response:
            body = orjson.loads(await response.read())
        self.tally.latencies_s.append(time.perf_counter() - started)
        self.tally.record((aggregate_type, aggregate_id), response.status, body)
        return response.status

    async def get(self, path: str) -> tuple[int, Json]:
        async with self.session.get(self.base_url + path, headers=self._as("demo")) as response:
            return response.status, orjson.loads(await response.read())

    async def close(self) -> None:
        await self.session.close()
