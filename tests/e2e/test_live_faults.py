"""Live subscriptions at fault: the process that stored events is killed, Redis is paused
(SIGSTOP on a redis-server of the test's own), a subscriber's connection is dropped mid-stream
and it resumes from its last position. Every subscriber (SSE, WebSocket, and the room's chat
socket) ends with every stored event of the room exactly once, in version order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.e2e.live_clients import ChatClient, LiveReader, chat, sse, websocket
from tests.fleet import FleetProcess, running_fleet, start_together
from tests.waiting import wait_for
from workers.devtools.embedded import EmbeddedStack


@pytest.fixture
async def own_redis(stack: EmbeddedStack) -> AsyncIterator[EmbeddedStack]:
    """The session's Kafka and MongoDB, with a redis-server this test may pause."""
    async with EmbeddedStack(
        kafka_url=stack.urls.kafka_url, mongo_url=stack.urls.mongo_url, start_redis=True
    ) as own:
        yield own


class Talker:
    """Sends MessageSent through a process until stopped; counts what was accepted."""

    def __init__(self, process: FleetProcess, room: str) -> None:
        self.process, self.room = process, room
        self.accepted = 0
        self.ids: list[str] = []
        self.refused = 0
        self._n = 0

    async def say(self, times: int) -> None:
        for _ in range(times):
            self._n += 1
            body = {"type": "MessageSent", "command_id": f"c{self._n}",
                    "data": {"message_id": f"m{self._n}", "content": f"n{self._n}"}}  # fmt: skip
            status, _ = await self.process.post(f"/v1/chat_room/{self.room}/events", body,
                                                token=self.process.token("ann"))  # fmt: skip
            if status == 202:
                self.accepted += 1
                self.ids.append(f"c{self._n}")
            else:
                self.refused += 1  # 503 while Redis is paused: nothing was written


async def stored_count(process: FleetProcess, room: str) -> int:
    status, body = await process.get(f"/v1/chat_room/{room}/events?limit=1000")
    return len(body["events"]) if status == 200 else 0


def exactly_once_in_order(reader: LiveReader, count: int) -> bool:
    return reader.versions() == list(range(1, count + 1))


async def test_nothing_is_lost_repeated_or_reordered_across_a_killed_writer_a_paused_redis_and_a_dropped_subscriber(
    own_redis: EmbeddedStack,
) -> None:
    name, room = f"livefault_{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:6]}"
    fast = {"EVENTFLEET_REDIS_TIMEOUT_MS": "500", "EVENTFLEET_LIVE_HEARTBEAT_S": "1"}
    async with running_fleet(own_redis, name, roles="commands", **fast) as front:
        writer = FleetProcess.for_stack(own_redis, name, **fast)
        # A second writer in the same groups: the survivor takes the killed one's partitions.
        survivor = FleetProcess.for_stack(own_redis, name, **fast)
        await start_together(writer, survivor)
        talker = Talker(front, room)
        url = f"{front.url}/v1/chat_room/{room}/subscribe"
        steady = await sse(url, headers=front.auth_headers)
        dropped = await sse(url, headers=front.auth_headers)
        steady_ws = await websocket(url, headers=front.auth_headers)
        dropped_ws = await websocket(url, headers=front.auth_headers)
        room_socket: ChatClient = await chat(f"{front.url}/v1/rooms/{room}/ws",
                                             headers=front.auth_headers)  # fmt: skip
        resumed: LiveReader | None = None
        resumed_ws: LiveReader | None = None
        old_log = writer.log_path
        try:
            await talker.say(10)
            await wait_for(lambda: len(steady.versions()) == 10, timeout_s=30, what="ten live")

            redis = own_redis.process("redis")
            redis.pause()  # announcements and marks stop; what was stored must still arrive
            try:
                await talker.say(3)
            finally:
                redis.resume()
            await talker.say(10)

            last, last_ws = dropped.versions()[-1], dropped_ws.versions()[-1]
            await dropped.close()  # mid-stream
            await dropped_ws.close()
            await talker.say(5)
            resumed = await sse(url, headers={"Last-Event-ID": str(last), **front.auth_headers})
            resumed_ws = await websocket(f"{url}?after_version={last_ws}",
                                         headers=front.auth_headers)  # fmt: skip

            old_log = writer.log_path
            await writer.killed()  # the process that stored (and announced) every event so far
            await talker.say(10)  # accepted by the front, stored by the survivor

            try:
                await wait_for(
                    lambda: _stored_all(front, room, talker.accepted), timeout_s=90,
                    what=f"{talker.accepted} accepted messages stored",
                )  # fmt: skip
            except AssertionError:
                _, events = await front.get(f"/v1/chat_room/{room}/events?limit=1000")
                have = {e["metadata"]["command_id"] for e in events.get("events", [])}
                missing = [c for c in talker.ids if c not in have]
                outcomes = [await front.get(f"/v1/chat_room/{room}/outcome?command_id={c}")
                            for c in missing]  # fmt: skip
                text = old_log.read_text(errors="replace").splitlines()
                at = next((i for i, line in enumerate(text) if "ERROR" in line), len(text))
                old = text[at : at + 40]
                raise AssertionError(
                    f"missing {missing}: {outcomes}\n" + "\n".join(old) + survivor.log_tail(30)
                ) from None
            count = await stored_count(front, room)
            await wait_for(lambda: len(steady.versions()) >= count, timeout_s=30,
                           what="the steady subscriber to catch up")  # fmt: skip
            await wait_for(lambda: len(resumed.versions()) >= count - last,  # type: ignore[union-attr]
                           timeout_s=30, what="the resumed subscriber to catch up")  # fmt: skip
            await wait_for(
                lambda: len(steady_ws.versions()) >= count
                and len(resumed_ws.versions()) >= count - last_ws  # type: ignore[union-attr]
                and len(room_socket.versions()) >= count,
                timeout_s=30, what="the WebSocket subscribers to catch up",
            )  # fmt: skip
            assert exactly_once_in_order(steady, count), steady.versions()
            assert dropped.versions() + resumed.versions() == list(range(1, count + 1))
            assert exactly_once_in_order(steady_ws, count), steady_ws.versions()
            assert dropped_ws.versions() + resumed_ws.versions() == list(range(1, count + 1))
            assert room_socket.versions() == list(range(1, count + 1)), room_socket.versions()
            assert talker.accepted >= 30
            print(f"live at fault: sent {talker.accepted + talker.refused} / accepted "
                  f"{talker.accepted} (503 while Redis paused {talker.refused}) / stored {count} / "
                  f"lost 0 / doubled 0 / told wrong 0; subscribers: steady {len(steady.versions())}"
                  f", dropped+resumed {len(dropped.versions()) + len(resumed.versions())}, each "
                  "once in order")  # fmt: skip
        finally:
            for reader in (steady, dropped, resumed, steady_ws, dropped_ws, resumed_ws):
                if reader is not None:
                    await reader.close()
            await room_socket.close()
            await survivor.stop()
            writer.kill()


async def _stored_all(process: FleetProcess, room: str, accepted: int) -> bool:
    return await stored_count(process, room) >= accepted
