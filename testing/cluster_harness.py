"""TEST ONLY: local clusters of real signer nodes on loopback, for integration tests.

Each node gets its own slice of the public TEST ONLY prime fixture (so aux info does
not wait for safe primes, and no two nodes share a prime). Nodes run either in this
process (``in_process_cluster``: fast, one gRPC server per node) or as separate
``mpcnode serve`` processes (``ProcessCluster``: what operators run; needed for kill -9).
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_config import (
    ClusterLayout,
    dump_node_config,
    init_cluster,
    load_coordinator_config,
    load_node_config,
)
from mpcnode.ceremony.prime_pool import PrimePool, write_pool_atomic
from testing import fixture_keys

PRIMES_PER_NODE = 4  # two aux-info runs (keygen + one refresh) per node


def free_port_base(count: int) -> int:
    """A base port with ``count`` consecutive free ports (best effort)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + 2 * count + 1100 < 65000 and all(_free(base + k) for k in range(count + 1)):
            return base
    raise RuntimeError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def make_cluster(root: Path, nodes: int, threshold: int, *, metrics: bool = False,
                 crash_after_consume: set[int] | None = None,
                 unauthorized_digests: bool = True) -> ClusterLayout:
    """``mpc-ceremony init`` plus TEST ONLY prime pools and test settings per node.

    ``unauthorized_digests`` (TEST ONLY) lets the nodes sign bare digests without a
    policy check, for the tests of the protocol and transport layers; the zero-trust
    tests turn it off, as production configs always are."""
    base = free_port_base(nodes)
    layout = init_cluster(root, nodes, threshold, base_port=base,
                          metrics_base_port=base + 1000)
    primes = fixture_keys.test_primes(1024)
    if nodes * PRIMES_PER_NODE > len(primes):
        raise ValueError("not enough TEST ONLY fixture primes for that many nodes")
    for i in range(1, nodes + 1):
        path = root / f"node{i}" / "node.toml"
        cfg = load_node_config(path)
        pool = root / f"node{i}" / "TEST_ONLY_primes.json"
        chunk = primes[PRIMES_PER_NODE * (i - 1): PRIMES_PER_NODE * i]
        write_pool_atomic(pool, PrimePool(1024, tuple(chunk), test_material=True))
        cfg = dataclasses.replace(
            cfg, prime_pool=pool, allow_test_primes=True,
            metrics_listen=cfg.metrics_listen if metrics else None,
            crash_after_consume=i in (crash_after_consume or set()),
            sign_unauthorized_digests=unauthorized_digests)
        path.write_text(dump_node_config(cfg))
    return layout


@contextmanager
def in_process_cluster(root: Path, nodes: int, threshold: int, *,
                       unauthorized_digests: bool = True) -> Iterator[Coordinator]:
    from mpcnode.daemon.node_server import running_server

    make_cluster(root, nodes, threshold, unauthorized_digests=unauthorized_digests)
    with ExitStack() as stack:
        for i in range(1, nodes + 1):
            stack.enter_context(running_server(load_node_config(root / f"node{i}" / "node.toml")))
        coordinator = Coordinator(load_coordinator_config(root), timeout=120.0)
        stack.callback(coordinator.close)
        yield coordinator


class ProcessCluster:
    """Signer nodes as real ``python -m mpcnode serve`` processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def config(self, i: int) -> Path:
        return self.root / f"node{i}" / "node.toml"

    def start(self, i: int) -> None:
        with (self.root / f"node{i}" / "node.log").open("ab") as log:
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "mpcnode", "serve", "--config", str(self.config(i))],
                stdout=log, stderr=log)

    def stop(self, i: int, *, kill: bool = False) -> int:
        p = self.procs.pop(i)
        if kill:
            p.kill()
        else:
            p.terminate()
        return p.wait(timeout=30)

    def wait_exit(self, i: int, timeout: float = 30) -> int:
        p = self.procs.pop(i)
        return p.wait(timeout=timeout)

    def stop_all(self) -> None:
        for i in list(self.procs):
            self.stop(i)

    def wait_healthy(self, coordinator: Coordinator, parties: set[int],
                     timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if parties <= set(coordinator.healthy()):
                return
            time.sleep(0.1)
        raise TimeoutError(f"nodes {sorted(parties)} not healthy after {timeout}s")
