"""The settings of the services the fleet connects to: Kafka and its topics, MongoDB, Redis,
NATS."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from workers.runtime.settings.values import (
    MOST,
    Concern,
    EnvName,
    FilePath,
    Name,
    SaslMechanism,
    SecurityProtocol,
    url,
)


class Kafka(Concern):
    """Kafka: how every client connects, and how long it waits."""

    kafka_url: Annotated[str, url("kafka")] = "kafka://127.0.0.1:9092"
    """Kafka bootstrap servers, comma-separated after kafka://"""
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    """how every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL"""
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"""
    kafka_sasl_username: str = ""
    """SASL user name"""
    kafka_sasl_password_file: FilePath = ""
    """file holding the SASL password (e.g. a mounted Secret)"""
    kafka_sasl_password_env: EnvName = ""
    """name of the environment variable holding the SASL password"""
    kafka_ssl_cafile: FilePath = ""
    """CA bundle (PEM) that signs the brokers' certificates; empty: system CAs"""
    kafka_ssl_certfile: FilePath = ""
    """client certificate (PEM) for mutual TLS, with EVENTFLEET_KAFKA_SSL_KEYFILE"""
    kafka_ssl_keyfile: FilePath = ""
    """private key (PEM) of the client certificate"""
    kafka_ssl_check_hostname: bool = True
    """check that a broker's certificate names the host connected to"""
    kafka_idempotence: bool = True
    """idempotent producer (off for brokers without InitProducerId, e.g. Tansu)"""
    kafka_timeout_ms: int = Field(5000, ge=100, le=MOST)
    """Kafka's time to answer one request (request_timeout_ms); a produce waits at most 2.5x"""
    kafka_fetch_max_wait_ms: int = Field(100, ge=1, le=60_000)
    """how long a fetch waits for data (latency floor on Tansu)"""
    kafka_session_timeout_ms: int = Field(10_000, ge=1000, le=300_000)
    """consumer group session timeout"""
    kafka_commit_interval_ms: int = Field(1000, ge=10, le=60_000)
    """how often a busy consumer commits what it has decided; one that has caught up commits
    at once (at most ten times a second)"""


class Topics(Concern):
    """The topics and consumer groups: their names, and how `topics ensure` creates them."""

    topic_prefix: Name = "eventfleet."
    """prefix of every topic name"""
    group_id: Name = "eventfleet"
    """consumer group prefix; each role joins <group_id>-<role>"""
    partitions: int = Field(8, ge=1, le=10_000)
    """partitions of every topic created by `topics ensure`"""
    replication: int = Field(1, ge=1, le=16)
    """replication factor of created topics"""
    min_insync_replicas: int = Field(0, ge=0, le=16)
    """min.insync.replicas of created topics (0: replication - 1, at least 1, at most 2)"""
    topic_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1, le=2**62)
    """retention.ms of created topics (events.stored keeps everything; -1: forever)"""
    topics_auto_create: bool = False
    """workers create missing topics at start (needs CreateTopics); otherwise `topics ensure`"""


class Mongo(Concern):
    """MongoDB: the event store, the snapshots and the views."""

    mongo_url: Annotated[str, url("mongodb", "mongodb+srv")] = "mongodb://127.0.0.1:27017"
    """MongoDB connection string"""
    mongo_url_file: FilePath = ""
    """file holding the MongoDB connection string (instead of EVENTFLEET_MONGO_URL)"""
    mongo_url_env: EnvName = ""
    """name of the environment variable holding the MongoDB connection string"""
    mongo_database: Name = "eventfleet"
    """MongoDB database holding events, snapshots and views"""
    mongo_timeout_ms: int = Field(5000, ge=100, le=MOST)
    """bound on one whole store call (PyMongo timeoutMS: selection, connection, operation)"""


REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)


class Redis(Concern):
    """Redis: the marker, the command answers, the live feed and the bridge's Redis bus."""

    redis_url: Annotated[str, url(*REDIS_SCHEMES)] = "redis://127.0.0.1:6379/0"
    """Redis for the marker, the command answers, the live feed and the bridge's Redis bus;
    redis+sentinel://h1:26379,h2:26379/<master>/<db> for Sentinel, redis+cluster://h1:6379,h2:6379
    for Cluster"""
    redis_url_file: FilePath = ""
    """file holding the Redis URL (instead of EVENTFLEET_REDIS_URL)"""
    redis_url_env: EnvName = ""
    """name of the environment variable holding the Redis URL"""
    redis_timeout_ms: int = Field(2000, ge=50, le=MOST)
    """bound on one Redis call"""


class Nats(Concern):
    """NATS, and which bus the bridge role republishes to."""

    nats_url: Annotated[str, url("nats", "tls")] = "nats://127.0.0.1:4222"
    """NATS, for the bridge role's NATS bus"""
    nats_url_file: FilePath = ""
    """file holding the NATS URL (instead of EVENTFLEET_NATS_URL)"""
    nats_url_env: EnvName = ""
    """name of the environment variable holding the NATS URL"""
    bridge_bus: Literal["redis", "nats"] = "redis"
    """the bus the bridge role republishes events.stored to (EVENTFLEET_REDIS_URL or _NATS_URL)"""
