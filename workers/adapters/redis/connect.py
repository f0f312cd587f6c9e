"""One Redis client from one URL: a single server, a Sentinel-managed master, or a Cluster.

- ``redis://``, ``rediss://``, ``unix://``: one server (``Redis.from_url``).
- ``redis+sentinel://[:password@]s1:26379,s2:26379/<master name>[/<db>]``: the master that
  the Sentinels name, found again after a failover. ``?sentinel_password=`` authenticates to
  the Sentinels themselves when they require it. ``rediss+sentinel://`` uses TLS to the data
  nodes.
- ``redis+cluster://[:password@]n1:6379,n2:6379``: a Redis Cluster from any of its nodes;
  commands go to the slot owner, MOVED/ASK are followed. ``rediss+cluster://`` uses TLS.

The marker keeps every key of one aggregate in one hash slot (``{aggregate}`` tags), so its
scripts and pipelines work on a cluster unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypedDict, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from topics.errors import ConfigError, MarkerUnavailable
from workers.adapters.redis.packing import fast_packing
from workers.secrets import mask_url

RedisClient = Redis | RedisCluster
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class _Timeouts(TypedDict):
    socket_timeout: float | None
    socket_connect_timeout: float | None


class NodeOptions(TypedDict, total=False):
    """What ``pubsub_nodes`` passes on to each node's client: socket timeouts, health, retry."""

    socket_timeout: float | None
    socket_connect_timeout: float | None
    health_check_interval: float
    retry: Retry


def connect_redis(
    url: str, *, timeout_ms: int, socket_timeout_ms: int | None = None
) -> RedisClient:
    """A client for ``url``; every call bounded by ``timeout_ms`` at the socket (or by
    ``socket_timeout_ms`` once connected, for a client whose calls block longer on purpose)."""
    timeout_s = timeout_ms / 1000
    read_s = timeout_s if socket_timeout_ms is None else socket_timeout_ms / 1000
    timeouts: _Timeouts = {"socket_timeout": read_s, "socket_connect_timeout": timeout_s}
    parts = urlsplit(url)
    if parts.scheme in CLUSTER_SCHEMES:
        # A cluster builds its nodes' connections itself: they keep redis-py's packer.
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in _hosts(url, 6379)],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme.startswith("rediss"),
            **timeouts,
        )
    client = (
        _sentinel_master(url, timeouts)
        if parts.scheme in SENTINEL_SCHEMES
        else Redis.from_url(url, **timeouts)
    )
    pool = client.connection_pool  # no connection made yet: every one packs through hiredis
    pool.connection_class = fast_packing(pool.connection_class)
    return client


def pubsub_nodes(
    url: str, *, timeout_ms: int, **options: Unpack[NodeOptions]
) -> list[Callable[[], Redis]]:
    """Ways to reach one node that carries ``url``'s Pub/Sub, in the order to try them.

    A server is itself; behind Sentinels, the master they name (asked again on every new
    connection, so a failover is followed); in a Cluster, each node the URL names, since a
    message published on any node of a cluster reaches the subscribers of every node. Calls to
    the Sentinels are bounded by ``timeout_ms``; ``options`` go to the node's client (its socket
    timeouts, health checks, retry).
    """
    parts = urlsplit(url)
    if parts.scheme in CLUSTER_SCHEMES:
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        tls = parts.scheme.startswith("rediss")
        node = partial(
            Redis,
            username=username,
            password=password,
            ssl=tls,
            **options,  # type: ignore[arg-type]  # health_check_interval: float s, annotated int
        )
        return [partial(node, host=h, port=p) for h, p in _hosts(url, 6379)]
    if parts.scheme in SENTINEL_SCHEMES:
        timeout_s = timeout_ms / 1000
        bounded: _Timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        return [partial(_sentinel_master, url, bounded, options)]
    return [partial(Redis.from_url, url, **options)]


def _sentinel_master(
    url: str, timeouts: _Timeouts, client_options: NodeOptions | None = None
) -> Redis:
    """The master the Sentinels of ``url`` name; ``timeouts`` bound the calls to the Sentinels
    and, unless ``client_options`` are given, the master's own."""
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(
            f"EVENTFLEET_REDIS_URL={mask_url(url)!r} names no master: write "
            "redis+sentinel://host:26379,host2:26379/<master name>[/<db>]."
        )
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ConfigError(
            f"EVENTFLEET_REDIS_URL={mask_url(url)!r}: the database after the master name must "
            f"be a number, not {db!r}."
        )
    query = parse_qs(parts.query)
    sentinel_password = (query.get("sentinel_password") or [""])[0]
    sentinel_kwargs = dict(timeouts)
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py's Sentinel is unannotated
        _hosts(url, 26379), sentinel_kwargs=sentinel_kwargs, **timeouts
    )
    master: Redis = sentinel.master_for(
        unquote(path[0]),
        db=int(db),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme.startswith("rediss"),
        **(timeouts if client_options is None else client_options),
    )
    return master


def _hosts(url: str, default_port: int) -> list[tuple[str, int]]:
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    hosts = []
    for host in netloc.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", str(default_port))
        hosts.append((name.strip("[]"), int(port)))
    return hosts


def describe_redis(url: str) -> str:
    """What ``url`` connects to, for messages: kind and hosts, no password."""
    parts = urlsplit(url)
    kind = (
        "Sentinel"
        if parts.scheme in SENTINEL_SCHEMES
        else "Cluster"
        if parts.scheme in CLUSTER_SCHEMES
        else "server"
    )
    return f"Redis {kind} {mask_url(url)}"


def is_cluster(client: RedisClient) -> bool:
    """A Redis Cluster: keys of one call must share a hash slot."""
    return isinstance(client, RedisCluster)


def escaped(error: BaseException) -> MarkerUnavailable | None:
    """A driver error no adapter translated (a tool's own client), as ours; None if not Redis's."""
    if not isinstance(error, RedisError):
        return None
    return MarkerUnavailable(
        f"Redis failed: {type(error).__name__}: {error}; check EVENTFLEET_REDIS_URL and that the "
        "server runs"
    )
