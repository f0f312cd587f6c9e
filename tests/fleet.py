"""Fleet processes for end-to-end tests: ``eventfleet worker`` subprocesses on the embedded stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.keys import master_key_env
from tests.launcher import Child, close_launchers, start_fleet_process
from tests.redis_keys import claim
from tests.tokens import TESTER, TESTER_ROLES, Issuer, bearer, shared_issuer
from tests.waiting import wait_for, within
from workers.devtools.embedded import EmbeddedStack, free_port


@dataclass
class FleetProcess:
    """One ``eventfleet worker`` process with its own prefix, group and database."""

    env: dict[str, str]
    roles: str = "all"
    process: Child | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir(), f"fleet-{uuid.uuid4().hex[:8]}.log")
    )
    issuer: Issuer = field(default_factory=shared_issuer)
    """Who signs the tokens this process trusts and the tests send."""
    projection: str | None = None
    """With ``roles="projection"``: the one projection it runs (``--projection``)."""

    @classmethod
    def for_stack(
        cls,
        stack: EmbeddedStack,
        name: str,
        *,
        roles: str = "all",
        issuer: Issuer | None = None,
        projection: str | None = None,
        **extra: str,
    ) -> FleetProcess:
        urls = stack.urls
        issuer = issuer or shared_issuer()
        env = {
            "EVENTFLEET_KAFKA_URL": urls.kafka_url,
            "EVENTFLEET_MONGO_URL": urls.mongo_url,
            "EVENTFLEET_REDIS_URL": urls.redis_url,
            "EVENTFLEET_MONGO_DATABASE": name,
            "EVENTFLEET_TOPIC_PREFIX": f"{name}.",
            "EVENTFLEET_GROUP_ID": name,
            "EVENTFLEET_HTTP_PORT": str(free_port()),
            "EVENTFLEET_KAFKA_IDEMPOTENCE": "false",
            "EVENTFLEET_DOMAINS": "workers.examples.domains:default_domains",
            # Tansu answers a long poll only at its end, so this is each hop's latency, and an
            # idle process fetches (and the broker answers) once per wait: at 25 ms an idle
            # fleet and its broker took 20% of a core, and the suite 51 CPU-minutes and 30
            # minutes on 2 cores; at 60 ms 34 and 21 (tests/bench/idle_fleet.py measures it).
            "EVENTFLEET_KAFKA_FETCH_MAX_WAIT_MS": "60",
            "EVENTFLEET_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "EVENTFLEET_PARTITIONS": "4",
            "EVENTFLEET_TOPICS_AUTO_CREATE": "true",
            "EVENTFLEET_LOG_LEVEL": "info",
            **issuer.env(),  # the door is shut: every request below sends a token
            # One principal writes for every test of a session on the shared fleet: its budget
            # is one no test meets (the draws still run); tests/e2e/test_write_budgets.py
            # sets the budgets it tests.
            "EVENTFLEET_WRITE_BUDGET_PER_S": "1000000",
            "EVENTFLEET_WRITE_BUDGET_BURST": "1000000",
            **master_key_env(),  # personal fields are sealed: the session's master key
        }
        env.update(extra)
        claim(env["EVENTFLEET_TOPIC_PREFIX"])  # its Redis keys go when the session ends
        return cls(env=env, roles=roles, issuer=issuer, projection=projection)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['EVENTFLEET_HTTP_PORT']}"

    @property
    def prefix(self) -> str:
        return self.env["EVENTFLEET_TOPIC_PREFIX"]

    async def start(self, *, timeout_s: float = 60) -> FleetProcess:
        await self.launch()
        # A start takes seconds: asked every 0.1 s (every 0.02 s, the readiness polls of the
        # suite's ~200 starts were a twelfth of its CPU).
        await wait_for(
            self.ready, timeout_s=timeout_s, interval_s=0.1,
            what=f"fleet ready (log: {self.log_path})",
        )  # fmt: skip
        return self

    async def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        _STARTED.append(self)
        argv = ["worker", "--role", self.roles]
        if self.projection:
            argv += ["--projection", self.projection]
        env = {**os.environ, **self.env}
        self.process = await start_fleet_process(argv, env, self.log_path)

    async def ready(self) -> bool:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(f"fleet exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            status, _ = await self.request("GET", "/readyz", headers={})  # open: no token
        except (aiohttp.ClientError, OSError):
            return False
        return status == 200

    async def stop(self, *, timeout_s: float = 30) -> int:
        """SIGTERM and wait: the drain must finish within the grace period.

        The log stays, even after a clean exit: it is in the run's temporary folder, which a run
        that passed removes and a run that failed keeps, so a failure that shows in another
        process (a command it never sent) can be read in that process's log.
        """
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await within(self.process.wait(), timeout_s=timeout_s, what="the fleet to drain")
            except AssertionError:
                self.kill()
                raise AssertionError(
                    f"fleet did not drain within {timeout_s}s:\n{self.log_tail()}"
                ) from None
        return self.process.returncode or 0

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # the group is gone already
                os.killpg(self.process.pid, signal.SIGKILL)

    async def killed(self) -> None:
        self.kill()
        if self.process is not None:
            await self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request, with ``token`` (default: the test principal's) unless ``headers``
        say otherwise."""
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        sent = bearer(token or self.token()) if headers is None else headers
        if data is not None and "Content-Type" not in sent:
            sent = {**sent, "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            async with session.request(
                method, self.url + path, data=data, headers=sent,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as r:  # fmt: skip
                text = await r.read()
                try:
                    return r.status, orjson.loads(text)
                except orjson.JSONDecodeError:
                    return r.status, text.decode(errors="replace")

    async def get(self, path: str, *, token: str | None = None) -> tuple[int, Any]:
        return await self.request("GET", path, token=token)

    async def post(
        self, path: str, body: Any = None, raw: bytes | None = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        return await self.request("POST", path, body, raw, token=token)

    def token(self, sub: str = TESTER, roles: Sequence[str] = TESTER_ROLES) -> str:
        """A valid token of this fleet's issuer for ``sub`` with ``roles``."""
        return self.issuer.token(sub, roles)

    @property
    def auth_headers(self) -> dict[str, str]:
        """The test principal's Authorization header, for tests with their own client."""
        return bearer(self.token())

    async def metric(self, name: str, **labels: str) -> float:
        """``metric(page, name, **labels)`` of the process's ``/metrics`` now, scraped as
        Prometheus does (no token)."""
        status, page = await self.request("GET", "/metrics", headers={})
        assert status == 200, page
        return metric(page, name, **labels)


# What a family's samples add to its name (a counter's _total, a histogram's _bucket, …).
_SAMPLE_SUFFIXES = ("", "_total", "_created", "_count", "_sum", "_bucket", "_info")


def samples(page: str, name: str, **labels: str) -> list[Sample]:
    """The samples named ``name`` in a Prometheus text page whose labels include ``labels``.

    A name that no family on the page declares is an AssertionError, so that a misspelt or
    removed metric fails the test instead of reading as never moved.
    """
    found: list[Sample] = []
    declared = False
    for family in text_string_to_metric_families(page):
        declared = declared or name in {family.name + suffix for suffix in _SAMPLE_SUFFIXES}
        found += [
            s for s in family.samples if s.name == name and labels.items() <= s.labels.items()
        ]
    assert declared, f"{name} is not declared on the page"
    return found


def metric(page: str, name: str, **labels: str) -> float:
    """The sum of the samples ``samples(page, name, **labels)`` finds: 0 for a labelled series
    not moved yet (prometheus-client shows it only once it has)."""
    return sum(s.value for s in samples(page, name, **labels))


def json_payload(raw: bytes) -> aiohttp.BytesPayload:
    """``raw`` sent as ``Content-Type: application/json`` (aiohttp says octet-stream: 415)."""
    return aiohttp.BytesPayload(raw, content_type="application/json")


async def start_together(*processes: FleetProcess, timeout_s: float = 60) -> None:
    """Launch every process at once, then wait until each is ready: their imports, group joins
    and recoveries overlap instead of adding up."""
    for process in processes:
        await process.launch()
    await asyncio.gather(*(
        wait_for(p.ready, timeout_s=timeout_s, what=f"fleet ready (log: {p.log_path})")
        for p in processes
    ))  # fmt: skip


def fleet_pair(stack: EmbeddedStack, name: str, **env: str) -> tuple[FleetProcess, FleetProcess]:
    """A commands process and an appender apart, on one database, topic prefix and group."""
    commands = FleetProcess.for_stack(stack, name, roles="commands", **env)
    appender = FleetProcess.for_stack(stack, name, roles="appender", **env)
    return commands, appender


@asynccontextmanager
async def running_fleet(
    stack: EmbeddedStack,
    name: str,
    *,
    roles: str = "all",
    issuer: Issuer | None = None,
    **env: str,
) -> AsyncIterator[FleetProcess]:
    """A fleet process for the block: started ready, drained after it (SIGTERM).

    However the block ends, the process stops; a block that succeeded also needs a clean exit.
    """
    process = await FleetProcess.for_stack(stack, name, roles=roles, issuer=issuer, **env).start()
    try:
        yield process
    finally:
        code = await process.stop()
    assert code == 0, f"the fleet exited with {code}:\n{process.log_tail()}"


_STARTED: list[FleetProcess] = []
"""Every fleet process a test started: none may outlive the session, whatever failed."""


@pytest.fixture(scope="session", autouse=True)
def no_fleet_outlives_the_session() -> Iterator[None]:
    yield
    for process in _STARTED:
        process.kill()


@pytest.fixture(scope="session", autouse=True)
async def launchers_end() -> AsyncIterator[None]:
    """The session's launchers end with it, while its loop still runs (tests/launcher.py)."""
    yield
    await close_launchers()


@pytest.fixture(scope="session")
async def fleet(stack: EmbeddedStack) -> AsyncIterator[FleetProcess]:
    """A fleet running every pipeline role, shared by the end-to-end tests."""
    async with running_fleet(stack, f"e2e_{uuid.uuid4().hex[:8]}") as process:
        yield process


def order_items(n: int = 2) -> list[dict[str, Any]]:
    return [{"sku": f"sku-{i}", "qty": i + 1, "price": 2.5} for i in range(n)]


LIFECYCLE: Sequence[tuple[str, dict[str, Any]]] = (
    ("OrderPlaced", {"items": order_items()}),
    ("OrderPaid", {"amount": 12.5}),
    ("OrderShipped", {"carrier": "dhl"}),
    ("OrderDelivered", {}),
)
