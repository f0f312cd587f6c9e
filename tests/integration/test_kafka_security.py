"""Kafka over TLS (CA bundle, client certificates) and SASL, against real brokers.

TLS: Tansu 0.6.0 declares ``--cert`` and ``--key`` in one clap group, which makes them
mutually exclusive, so it cannot serve TLS from its command line. The broker here is a real
Tansu behind a TLS terminator (``tests.faults.TcpProxy`` with an SSL context: a real TLS
handshake, the server certificate checked against the CA, a client certificate required
when asked), and Tansu advertises the terminator's address, so every connection a client
makes -- bootstrap, metadata, group coordinator -- goes over TLS.

SASL: Tansu ``--authentication`` offers SCRAM-SHA-256/512 (not PLAIN) and keeps users in its
storage, which the embedded in-memory storage can only be given over an authenticated
connection; so the tests prove the negotiation and the refusal, not a successful login.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.faults import TcpProxy, tansu_broker
from tests.fleet import FleetProcess
from tests.waiting import wait_for
from topics.catalog import TopicNames, catalog
from topics.errors import ConfigError, StreamUnavailable
from workers.adapters.kafka import KafkaConfig, KafkaLagReader, KafkaProducer, ensure_topics
from workers.devtools.embedded import EmbeddedStack, free_port
from workers.devtools.embedded.process import ServiceProcess
from workers.ports import Outgoing
from workers.secrets import Secret

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one test CA: the CA, a server certificate for 127.0.0.1, a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    root = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert(HOST, "localhost")
    client = ca.issue_cert("eventfleet-client@example.com")
    files = TlsFiles(*(root / n for n in ("ca", "cert", "key", "ccert", "ckey", "other")))
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    other.cert_pem.write_to_path(str(files.other_ca))
    return files


@dataclass
class TlsBroker:
    """A Tansu reachable only through TLS at ``bootstrap``."""

    bootstrap: str
    proxy: TcpProxy
    process: ServiceProcess


async def _tls_broker(files: TlsFiles, workdir: Path, *, client_cert: bool) -> TlsBroker:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.server_cert, files.server_key)
    if client_cert:
        context.load_verify_locations(files.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    proxy_port = free_port()
    process = await tansu_broker(workdir, advertised_port=proxy_port, extra=[])
    proxy = TcpProxy(HOST, process.port, ssl=context, port=proxy_port)
    await proxy.start()
    return TlsBroker(f"{HOST}:{proxy_port}", proxy, process)


@pytest.fixture
async def tls_broker(tls_files: TlsFiles, tmp_path: Path) -> AsyncIterator[TlsBroker]:
    broker = await _tls_broker(tls_files, tmp_path, client_cert=False)
    yield broker
    await broker.proxy.stop()
    broker.process.kill()


@pytest.fixture
async def mtls_broker(tls_files: TlsFiles, tmp_path: Path) -> AsyncIterator[TlsBroker]:
    broker = await _tls_broker(tls_files, tmp_path, client_cert=True)
    yield broker
    await broker.proxy.stop()
    broker.process.kill()


def tls_config(bootstrap: str, files: TlsFiles, **extra: object) -> KafkaConfig:
    values: dict[str, object] = {
        "bootstrap_servers": (bootstrap,),
        "security_protocol": "SSL",
        "ssl_cafile": str(files.ca),
        "idempotence": False,  # Tansu rejects InitProducerId
        "timeout_ms": 3000,
    }
    values.update(extra)
    return KafkaConfig(**values)  # type: ignore[arg-type]


async def test_producer_and_admin_work_over_tls(tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    kafka = tls_config(tls_broker.bootstrap, tls_files)
    names = TopicNames(f"tls{uuid.uuid4().hex[:6]}.")
    specs = catalog(names, partitions=2, replication=1)
    reports = await ensure_topics(kafka, specs)
    assert {r.status for r in reports} == {"created"}
    assert {r.status for r in await ensure_topics(kafka, specs)} == {"ok"}
    producer = KafkaProducer(kafka, client_id="tls-test")
    await producer.start()
    try:
        delivery = await producer.send(names.events, Outgoing(b"k", b"over tls"))
        assert delivery.topic == names.events and delivery.offset == 0
    finally:
        await producer.stop()


async def test_a_client_certificate_is_presented_when_the_broker_requires_one(
    mtls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    without = KafkaProducer(tls_config(mtls_broker.bootstrap, tls_files), client_id="no-cert")
    with pytest.raises(StreamUnavailable, match="could not connect"):
        await without.start()
    kafka = tls_config(
        mtls_broker.bootstrap,
        tls_files,
        ssl_certfile=str(tls_files.client_cert),
        ssl_keyfile=str(tls_files.client_key),
    )
    producer = KafkaProducer(kafka, client_id="with-cert")
    await producer.start()
    try:
        await producer.ping()
    finally:
        await producer.stop()


async def test_a_broker_certificate_from_an_unknown_ca_is_refused(
    tls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    kafka = tls_config(tls_broker.bootstrap, tls_files, ssl_cafile=str(tls_files.other_ca))
    producer = KafkaProducer(kafka, client_id="refused")
    with pytest.raises(StreamUnavailable) as caught:
        await producer.start()
    assert "SSL" in str(caught.value)  # the message names the security in use


async def test_the_lag_reader_reads_over_tls(tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    kafka = tls_config(tls_broker.bootstrap, tls_files)
    reader = KafkaLagReader(kafka)
    await reader.start()
    try:
        assert await reader.read({"nobody": ["no-such-topic"]}) == []
    finally:
        await reader.stop()


async def test_a_whole_fleet_runs_over_tls(
    stack: EmbeddedStack, tls_broker: TlsBroker, tls_files: TlsFiles, unique_name: str
) -> None:
    """Faust's consumer and producer, our producer, the admin: every client speaks TLS."""
    fleet = FleetProcess.for_stack(
        stack,
        unique_name,
        EVENTFLEET_KAFKA_URL=f"kafka://{tls_broker.bootstrap}",
        EVENTFLEET_KAFKA_SECURITY_PROTOCOL="SSL",
        EVENTFLEET_KAFKA_SSL_CAFILE=str(tls_files.ca),
    )
    await fleet.start()
    try:
        status, body = await fleet.post(
            "/v1/order/tls-1/events",
            {"type": "OrderPlaced", "data": {"items": [{"sku": "a", "qty": 1, "price": 1.0}]}},
        )
        assert status == 202, body

        async def stored() -> bool:
            status, body = await fleet.get("/v1/order/tls-1/events")
            return status == 200 and len(body["events"]) == 1

        await wait_for(stored, timeout_s=30, what="the event stored by the appender over TLS")
    finally:
        assert await fleet.stop() == 0


@pytest.fixture
async def sasl_broker(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    process = await tansu_broker(tmp_path, advertised_port=port, extra=["--authentication"])
    # tansu_broker listens on its own free port; the broker advertises ``port``: put a plain proxy
    # there so both agree (SASL needs no TLS terminator).
    proxy = TcpProxy(HOST, process.port, port=port)
    await proxy.start()
    yield f"{HOST}:{port}"
    await proxy.stop()
    process.kill()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_scram_is_negotiated_and_a_refused_login_fails_fast_without_the_password(
    sasl_broker: str, mechanism: str
) -> None:
    kafka = KafkaConfig(
        bootstrap_servers=(sasl_broker,),
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="eventfleet",
        sasl_password=Secret("pa55word-not-known"),
        idempotence=False,
        timeout_ms=2000,
    )
    producer = KafkaProducer(kafka, client_id="sasl")
    with pytest.raises(StreamUnavailable) as caught:
        await producer.start()
    message = str(caught.value)
    assert f"{mechanism} as eventfleet" in message
    assert "pa55word" not in message and "pa55word" not in repr(kafka)


async def test_a_client_without_sasl_is_refused_by_a_broker_that_requires_it(
    sasl_broker: str,
) -> None:
    kafka = KafkaConfig(bootstrap_servers=(sasl_broker,), idempotence=False, timeout_ms=2000)
    with pytest.raises(StreamUnavailable):
        await ensure_topics(kafka, [])


def test_bad_tls_files_stop_the_config_at_once(tls_files: TlsFiles, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match="EVENTFLEET_KAFKA_SSL_CAFILE"):
        _ = tls_config("h:1", tls_files, ssl_cafile=str(garbage)).ssl_context
