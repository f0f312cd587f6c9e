"""Processes the benchmarks start: fleet workers, baseline servers and the load (wrk)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from workers.devtools.bench.measure import Measured, cpu_seconds
from workers.devtools.bench.wrk import wrk
from workers.devtools.embedded import free_port


@dataclass
class Server:
    """A server process the benchmark measures (its CPU time, from /proc)."""

    name: str
    process: asyncio.subprocess.Process
    url: str
    log: str

    @property
    def pid(self) -> int:
        return self.process.pid


@asynccontextmanager
async def server(
    name: str,
    argv: list[str],
    *,
    url: str,
    env: Mapping[str, str],
    ready_path: str | None,
    cwd: str | None = None,
) -> AsyncIterator[Server]:
    """Start ``python -m argv...``; ready when ``ready_path`` answers 200 or it prints ``ready``.

    ``cwd``: where it runs. ``python -m`` puts its working directory first on ``sys.path``,
    ahead of ``PYTHONPATH``: a checkout is run from its own directory, or the packages it
    imports are those of wherever the bench was started."""
    log = tempfile.NamedTemporaryFile(prefix="eventfleet-bench-", suffix=".log", delete=False)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *argv,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    stop = signal.SIGTERM
    try:
        if ready_path is None:
            assert process.stdout is not None
            async with asyncio.timeout(60):
                line = await process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"{name} did not start: {line!r}")
        else:
            await _ready(url + ready_path, process, name)
        yield Server(name, process, url, log.name)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM, a failed row): the bench's data is disposable, so the
        # worker is killed at once rather than drained (a drain under load took up to 30 s).
        stop = signal.SIGKILL
        print(f"{name} (log {log.name}):\n{_tail(log.name)}", file=sys.stderr)
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop)
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def worker(
    name: str, role: str, env: Mapping[str, str], *, ready_path: str = "/healthz"
) -> AbstractAsyncContextManager[Server]:
    """A fleet worker of ``role`` on a free port of its own, ready once ``ready_path`` answers."""
    port = free_port()
    return server(
        name,
        ["workers.cli", "worker", "--role", role],
        url=f"http://127.0.0.1:{port}",
        env={**env, "EVENTFLEET_HTTP_PORT": str(port)},
        ready_path=ready_path,
    )


async def all_ready(servers: Sequence[Server], path: str, *, timeout_s: float = 120) -> None:
    """Return once every server answers ``path`` with 200 in one round of asks (a consumer
    group's ``/readyz``: each member was given its share, so the group has settled)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while not all(await asyncio.gather(*(_answers(session, s.url + path) for s in servers))):
            alive(list(servers))
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(servers)} processes were not {path} within {timeout_s:g} s"
                )
            await asyncio.sleep(0.1)


async def _ready(url: str, process: asyncio.subprocess.Process, name: str) -> None:
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before it was ready")
            if await _answers(session, url):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} was not ready within 90 s")


async def _answers(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether ``url`` answers 200 within 2 s."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


PLACED = orjson.dumps(
    {"type": "OrderPlaced", "data": {"items": [{"sku": "tea", "qty": 2, "price": 3.5}]}}
)
PAID = orjson.dumps({"type": "OrderPaid", "data": {"amount": 7}})
SHIPPED = orjson.dumps({"type": "OrderShipped", "data": {"carrier": "dhl"}})


async def load(target: Server, clients: int, count: int, run: str, kind: str) -> Measured:
    """Drive ``target`` with wrk; the server's CPU is measured over the measured load only.

    ``paid``: the orders are placed first (not measured), with room for the requests wrk sends
    before it stops, then OrderPaid is measured on orders whose marks exist. The count is
    every answer wrk got, over wrk's whole run, and the CPU over the same run.
    """
    if kind == "paid":
        # wrk notices its stop within 100 ms: the requests of that tail need placed orders too,
        # sized to this server's own rate (a second of it, ten times the stop's delay) as a
        # first placing run of other orders measured it, so a fast server never runs past the
        # placed orders into answers that are not 2xx.
        calibration = await wrk(
            target.url, connections=clients, count=count, run=f"{run}c", body=PLACED
        )
        tail = paid_tail(calibration, clients)
        await wrk(target.url, connections=clients, count=count + tail, run=run, body=PLACED)
    cpu_before = cpu_seconds(target.pid)
    result = await wrk(
        target.url,
        connections=clients,
        count=count,
        run=run,
        body=PAID if kind == "paid" else PLACED,
    )
    cpu = cpu_seconds(target.pid) - cpu_before
    alive([target])
    label = (
        f"{target.name}, {clients} conn, {'OrderPaid' if kind == 'paid' else 'OrderPlaced (new)'}"
    )
    return Measured(
        label,
        int(result["count"]),
        result["duration_us"] / 1e6,
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        cpu,
    )


async def checked(target: Server, kafka: str, topic: str) -> None:
    """Fail unless ``target`` does the work it is measured for: an order placed and paid is
    answered 202 (its mark moved), paying again and shipping an unplaced order are refused
    (409; ours, with no appender storing what it accepted, answers 503 store_catching_up: it
    judges only against stored events), and both accepted events are on ``topic``, once each."""
    order = f"check-{uuid.uuid4().hex[:10]}"
    accepted, refused = {202}, {409, 503}  # 503 store_catching_up: ours without an appender
    steps = (
        (order, PLACED, accepted),
        (order, PAID, accepted),
        (order, PAID, refused),
        (f"{order}-x", SHIPPED, refused),
    )
    async with aiohttp.ClientSession() as session:
        for aggregate, body, wanted in steps:
            url = f"{target.url}/v1/order/{aggregate}/events"
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as answer:
                said = (await answer.read())[:300].decode(errors="replace")
                if answer.status not in wanted or (
                    answer.status == 503 and "store_catching_up" not in said
                ):
                    raise RuntimeError(
                        f"{target.name} answered {answer.status} {said} to {body.decode()} on "
                        f"{aggregate}, not {sorted(wanted)}: "
                        "it does not do the work it is measured for"
                    )
    found = await records_of(kafka, topic, order)
    if found != 2:
        raise RuntimeError(
            f"{target.name}: {found} records of {order} on {topic}, not the 2 it accepted"
        )


async def records_of(kafka: str, topic: str, aggregate_id: str) -> int:
    """How many records on ``topic`` have a key naming ``aggregate_id`` (read to its end)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found = 0
        async with asyncio.timeout(30):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    found += sum(1 for r in records if r.key and aggregate_id.encode() in r.key)
        return found
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """``topic``'s partitions, in order; the metadata of every topic fetched first when the
    consumer knows none of them yet."""
    if not consumer.partitions_for_topic(topic):
        await consumer.topics()
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def paid_tail(placed: Mapping[str, float], clients: int) -> int:
    """Orders to place past the measured count: a second of the rate placing them ran at, and
    every connection's request in flight twice over."""
    seconds = placed["duration_us"] / 1e6
    rate = placed["count"] / seconds if seconds > 0 else 0.0
    return math.ceil(rate * PAID_TAIL_S) + 2 * clients


PAID_TAIL_S = 1.0


def alive(servers: list[Server]) -> None:
    """Fail with the log of a server that exited while it was being measured."""
    for s in servers:
        if s.process.returncode is not None:
            raise RuntimeError(
                f"{s.name} (pid {s.pid}) exited with {s.process.returncode} while measured; "
                f"its log ends:\n{_tail(s.log)}"
            )


def _tail(path: str, lines: int = 20) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
