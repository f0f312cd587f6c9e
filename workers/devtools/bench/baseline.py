"""The baselines, each in its own process: the strongest simple way to do the same work.

``python -m workers.devtools.bench.baseline coalesced|naive|floor PORT KAFKA REDIS TOPIC`` serves
``POST /v1/{type}/{id}/events``: parse the JSON body, one Lua check-and-set of the aggregate's
mark in Redis (``coalesced``: every call of a loop tick in one pipeline; ``naive``: one EVALSHA
per request), one acks=all produce, answer 202 (409 when the transition is refused). The first
two on plain aiohttp; ``floor`` does the coalesced one's work on uvicorn's httptools protocol
with a bare ASGI callable: the leanest server on well-kept parts.

``python -m workers.devtools.bench.baseline append|judged KAFKA MONGO DATABASE TOPIC OUT COUNT
BATCH`` runs the raw append pipeline: getmany → insert_many → produce the batch → commit
(``judged`` also reads the head of each aggregate it has not seen, as the appender does, and
checks each event before storing it: decoded, chained to the aggregate's last event, a
transition its type allows, its data of the declared shape), with the store's write concern
the appender uses, and prints ``{"count", "seconds", "refused"}`` once COUNT events
are stored and published.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from redis.asyncio import Redis

from topics.jsonvalue import JsonObject
from workers.http.edge.request import Receive, Scope, Send
from workers.runtime.loops import run

CAS = """
local mark = redis.call('GET', KEYS[1])
local current = 'none'
if mark then current = string.match(mark, '^([^|]*)|') end
for i = 3, #ARGV do
  if ARGV[i] == current then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', 60000)
    return 1
  end
end
return 0
"""
SHA = hashlib.sha1(CAS.encode()).hexdigest()
ALLOWED = {"OrderPlaced": ["none"], "OrderPaid": ["OrderPlaced"], "OrderShipped": ["OrderPaid"]}


class Coalesced:
    """Every CAS of one loop tick in one pipeline."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.queue: list[tuple[list[str], asyncio.Future[int]]] = []
        self.flushing = False

    async def cas(self, args: list[str]) -> int:
        """The CAS script's answer: 1 when the mark moved, 0 when the transition is refused."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.append((args, future))
        if not self.flushing:
            self.flushing = True
            await self.flush()
        return await future

    async def flush(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            pipe = self.redis.pipeline(transaction=False)
            for args, _ in batch:
                pipe.evalsha(SHA, 1, *args)
            for (_, future), result in zip(batch, await pipe.execute(), strict=True):
                future.set_result(result)
        self.flushing = False


async def clients(kafka: str, redis_url: str) -> tuple[Redis, AIOKafkaProducer, Coalesced]:
    """The command baselines' clients: Redis with the CAS script loaded, an acks=all producer,
    and the coalescer of its CAS calls."""
    redis = Redis.from_url(redis_url)
    await redis.script_load(CAS)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=0)
    await producer.start()
    return redis, producer, Coalesced(redis)


async def accept(
    cas: Callable[[list[str]], Awaitable[object]],
    producer: AIOKafkaProducer,
    topic: str,
    aggregate: tuple[str, str],
    command: JsonObject,
) -> bytes | None:
    """One command's work: the CAS of its aggregate's mark, then its event produced; the 202
    answer's body, or None when the transition is refused."""
    aggregate_type, aggregate_id = aggregate
    key = f"{aggregate_type}:{aggregate_id}"
    event_id = str(uuid.uuid4())
    # Keys under the topic's name (bench-<run>.…): the bench deletes them all afterwards.
    args = [f"{topic}:{key}", command["type"], event_id, *ALLOWED.get(command["type"], [])]
    if not await cas(args):
        return None
    event = {
        "id": event_id,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "type": command["type"],
        "data": command.get("data", {}),
        "version": None,
    }
    metadata = await producer.send_and_wait(topic, orjson.dumps(event), key=key.encode())
    return b'{"event_id":"%s","partition":%d,"offset":%d}' % (
        event_id.encode(),
        metadata.partition,
        metadata.offset,
    )


async def serve_floor(port: int, kafka: str, redis_url: str, topic: str) -> None:
    """The floor: the coalesced baseline's work on the leanest well-kept parts we know: uvicorn's
    httptools protocol with a bare ASGI callable (no framework, no request object), the same
    coalesced Lua check-and-set, one acks=all produce, an answer of prebuilt headers."""
    import uvicorn

    _, producer, coalesced = await clients(kafka, redis_url)
    json_headers = [(b"content-type", b"application/json")]
    refused = b'{"error":"transition_rejected"}'

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            chunk = message.get("body")
            body += chunk if isinstance(chunk, bytes) else b""
            more = bool(message.get("more_body"))
        _, _, aggregate_type, aggregate_id, _ = str(scope["path"]).split("/", 4)
        command = orjson.loads(body)
        answer = await accept(
            coalesced.cas, producer, topic, (aggregate_type, aggregate_id), command
        )
        status = 409 if answer is None else 202
        await send({"type": "http.response.start", "status": status, "headers": json_headers})
        await send({"type": "http.response.body", "body": refused if answer is None else answer})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        log_config=None,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    print("ready", flush=True)
    await server.main_loop()


async def serve(mode: str, port: int, kafka: str, redis_url: str, topic: str) -> None:
    redis, producer, coalesced = await clients(kafka, redis_url)

    async def naive(args: list[str]) -> object:
        return await redis.evalsha(SHA, 1, *args)

    cas = coalesced.cas if mode == "coalesced" else naive

    async def handle(request: web.Request) -> web.Response:
        aggregate = (request.match_info["type"], request.match_info["id"])
        answer = await accept(cas, producer, topic, aggregate, orjson.loads(await request.read()))
        if answer is None:
            return web.Response(status=409, body=b'{"error":"transition_rejected"}')
        return web.Response(status=202, body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/{type}/{id}/events", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Future()


# The chat room's transitions and data shape, written out as a hand-made pipeline would.
FOLLOWS = {"MessageSent": {None, "MessageSent", "MessageEdited", "MessageDeleted"}}
SHAPE = {"MessageSent": (("message_id", str), ("sender_id", str), ("content", str))}


def judge(events: list[JsonObject], heads: dict[str, tuple[str, str, int]]) -> list[bool]:
    """Each event chained to its aggregate's head, of a type that may follow it, of its shape.

    ``heads``: aggregate key → (last event id, last type, version), advanced by each accepted one.
    """
    verdicts = []
    for event in events:
        key = f"{event['aggregate_type']}:{event['aggregate_id']}"
        head_id, head_type, version = heads.get(key, ("-", None, 0))
        data = event["data"]
        ok = (
            event.get("after") == head_id
            and head_type in FOLLOWS.get(event["type"], ())
            and isinstance(data, dict)
            and all(isinstance(data.get(k), t) for k, t in SHAPE.get(event["type"], ()))
        )
        if ok:
            heads[key] = (event["id"], event["type"], version + 1)
            event["version"] = version + 1
        verdicts.append(ok)
    return verdicts


async def look_up_heads(
    collection: AsyncCollection[JsonObject],
    events: list[JsonObject],
    heads: dict[str, tuple[str, str, int]],
    seen: set[str],
) -> None:
    """The store's head of every aggregate of the batch not seen before, as the appender reads
    it: one indexed lookup each, all in flight at once; ``heads`` learns those that exist."""
    unseen = list(
        dict.fromkeys(
            (e["aggregate_type"], e["aggregate_id"])
            for e in events
            if f"{e['aggregate_type']}:{e['aggregate_id']}" not in seen
        )
    )
    if not unseen:
        return
    found = await asyncio.gather(
        *(
            collection.find_one(
                {"aggregate_type": t, "aggregate_id": i},
                projection={"version": 1, "type": 1},
                sort=[("version", -1)],
            )
            for t, i in unseen
        )
    )
    for (t, i), doc in zip(unseen, found, strict=True):
        seen.add(f"{t}:{i}")
        if doc is not None:
            heads[f"{t}:{i}"] = (doc["_id"], doc["type"], doc["version"])


async def append_pipeline(
    kafka: str,
    mongo: str,
    db_name: str,
    topic: str,
    out: str,
    count: int,
    batch: int,
    *,
    judged: bool = False,
) -> None:
    client: AsyncMongoClient[JsonObject] = AsyncMongoClient(mongo)
    # The appender's write concern (workers/adapters/mongo/client.py DURABLE): the same wait.
    collection = client[db_name].get_collection(
        f"raw_events_{uuid.uuid4().hex[:6]}", write_concern=WriteConcern(w="majority", j=True)
    )
    await collection.create_index(
        [("aggregate_type", 1), ("aggregate_id", 1), ("version", 1)], unique=True
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        max_poll_records=batch,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    versions: dict[str, int] = {}
    heads: dict[str, tuple[str, str, int]] = {}
    seen: set[str] = set()
    done = refused = 0
    first = 0.0
    print("ready", flush=True)
    while done < count:
        records = [
            r
            for rs in (await consumer.getmany(timeout_ms=100, max_records=batch)).values()
            for r in rs
        ]
        if not records:
            continue
        first = first or time.perf_counter()
        docs = []
        if judged:
            events = [orjson.loads(record.value) for record in records]
            await look_up_heads(collection, events, heads, seen)
            verdicts = judge(events, heads)
            refused += verdicts.count(False)
            docs = [{**e, "_id": e["id"]} for e, ok in zip(events, verdicts, strict=True) if ok]
            records = [r for r, ok in zip(records, verdicts, strict=True) if ok]
        else:
            for record in records:
                event = orjson.loads(record.value)
                key = f"{event['aggregate_type']}:{event['aggregate_id']}"
                versions[key] = versions.get(key, 0) + 1
                docs.append({**event, "_id": event["id"], "version": versions[key]})
        if docs:
            await collection.insert_many(docs, ordered=True)
        futures = [
            await producer.send(out, orjson.dumps(d), key=r.key)
            for d, r in zip(docs, records, strict=True)
        ]
        await asyncio.gather(*futures)
        await consumer.commit()
        done += len(records)
        if done + refused >= count:
            break
    seconds = time.perf_counter() - first
    print(
        orjson.dumps({"count": done, "seconds": seconds, "refused": refused}).decode(), flush=True
    )
    await consumer.stop()
    await producer.stop()
    await client.close()


def same_loop(main: Coroutine[object, None, None]) -> None:
    """Run ``main`` on the loop the measured workers run on (EVENTFLEET_EVENT_LOOP): a
    baseline on a slower loop would flatter the fleet."""
    run(main, loop=os.environ.get("EVENTFLEET_EVENT_LOOP", "uvloop"))


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode in ("append", "judged"):
        kafka, mongo, db, topic, out, count, batch = rest
        same_loop(
            append_pipeline(
                kafka, mongo, db, topic, out, int(count), int(batch), judged=mode == "judged"
            )
        )
    elif mode == "floor":
        port, kafka, redis_url, topic = rest
        same_loop(serve_floor(int(port), kafka, redis_url, topic))
    else:
        port, kafka, redis_url, topic = rest
        same_loop(serve(mode, int(port), kafka, redis_url, topic))
