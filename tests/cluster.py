"""A real Redis Cluster of three masters on loopback ports, for tests."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import RedisCluster as ClusterClient

from .redis_servers import RedisServer, cli_binary, free_port

MASTERS = 3


def _node() -> RedisServer:
    # The cluster bus gets a port of its own: port + 10000 may be taken or
    # beyond 65535 for the ephemeral ports free_port hands out.
    return RedisServer(
        args=(
            "--save", "",
            "--appendonly", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(free_port()),
            "--cluster-node-timeout", "5000",
        )
    )  # fmt: skip


@dataclass
class RedisCluster:
    """Three cluster-enabled servers joined into one cluster with all slots."""

    nodes: list[RedisServer] = field(
        default_factory=lambda: [_node() for _ in range(MASTERS)]
    )

    @property
    def url(self) -> str:
        """A URL naming one node: the client discovers the others."""
        return self.nodes[0].url

    @property
    def addresses(self) -> list[str]:
        """host:port of every node, as `redis-cli --cluster create` takes them."""
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self, timeout_s: float = 30.0) -> RedisCluster:
        """Start the nodes, join them into one cluster, wait until it serves."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            [cli_binary(), "--cluster", "create", *self.addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )  # fmt: skip
        self._wait_ok(timeout_s)
        return self

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def _wait_ok(self, timeout_s: float) -> None:
        """Until every node says the cluster is ok: all slots served."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._state(node) == "ok" for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster on {self.addresses} did not become ok")

    @staticmethod
    def _state(node: RedisServer) -> str:
        reply = subprocess.run(
            [cli_binary(), "-p", str(node.port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        for line in reply.splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return ""


class WholeClusterClient(ClusterClient):
    """A cluster client whose key counts and listings ask every master.

    Tests check "nothing is left" with DBSIZE and KEYS; on a cluster the
    keyspace is the union of the masters', so these ask all of them, as the
    same commands ask the one server of a plain Redis.
    """

    async def dbsize(self, **options: Any) -> int:
        """Keys in the whole cluster."""
        options.setdefault("target_nodes", ClusterClient.PRIMARIES)
        return await super().dbsize(**options)

    async def keys(self, pattern: Any = "*", **options: Any) -> Any:
        """Keys matching `pattern` on every master."""
        options.setdefault("target_nodes", ClusterClient.PRIMARIES)
        return await super().keys(pattern, **options)
