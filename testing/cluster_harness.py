"""TEST ONLY: local clusters of real signer nodes on loopback, for integration tests.

Each node gets its own slice of the public TEST ONLY prime fixture (so aux info does
not wait for safe primes, and no two nodes share a prime), allowed by the node's
``[testing]`` section. Nodes run either in this process (``in_process_cluster``: fast,
one gRPC server per node) or as separate processes (``ProcessCluster``; needed for
kill -9): ``python -m test_only.node_daemon`` for a node.toml with test switches, the
production ``mpcnode serve`` for one without.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import (
    DEFAULT_MAX_HEAD_AGE_S,
    dump_cluster_config,
    load_cluster_config,
    load_coordinator_config,
)
from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster
from mpcnode.ceremony.config_files import read_config
from mpcnode.ceremony.node_config import TESTING_SECTION, load_node_config
from mpcnode.ceremony.prime_pool import PrimePool, write_pool_atomic
from test_only.node_daemon import running_test_node
from test_only.node_switches import NodeSwitches, dump_test_node_config
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
                 unauthorized_digests: bool = True,
                 primes_per_node: int = PRIMES_PER_NODE,
                 audit_key: bytes | None = None,
                 audit_max_head_age_s: int = DEFAULT_MAX_HEAD_AGE_S) -> ClusterLayout:
    """``mpc-ceremony init`` plus TEST ONLY prime pools and test settings per node.

    ``unauthorized_digests`` (TEST ONLY) lets the nodes sign bare digests without a
    policy check, for the tests of the protocol and transport layers; the zero-trust
    tests turn it off, as production configs always are. ``audit_key`` (raw Ed25519)
    goes into cluster.toml as ``[audit] oms_public_key``: the nodes witness that OMS
    audit log, refusing heads older than ``audit_max_head_age_s``."""
    base = free_port_base(nodes)
    layout = init_cluster(root, nodes, threshold, base_port=base,
                          metrics_base_port=base + 1000)
    if audit_key is not None:
        cluster_file = root / "cluster.toml"
        cluster = dataclasses.replace(load_cluster_config(cluster_file), audit_key=audit_key,
                                      audit_max_head_age_s=audit_max_head_age_s)
        cluster_file.write_text(dump_cluster_config(cluster))
    add_test_settings(root, nodes, metrics=metrics, crash_after_consume=crash_after_consume,
                      unauthorized_digests=unauthorized_digests, primes_per_node=primes_per_node)
    return layout


def add_test_settings(root: Path, nodes: int, *, metrics: bool = False,
                      crash_after_consume: set[int] | None = None,
                      unauthorized_digests: bool = True,
                      primes_per_node: int = PRIMES_PER_NODE) -> None:
    """TEST ONLY prime pools and switches for the nodes of a cluster made by ``init``
    (in this process, or by ``mpc-ceremony init`` in another)."""
    for i in range(1, nodes + 1):
        make_test_node(root, i, metrics=metrics,
                       crash_after_consume=i in (crash_after_consume or set()),
                       unauthorized_digests=unauthorized_digests,
                       primes_per_node=primes_per_node)


def make_test_node(root: Path, i: int, *, metrics: bool = False,
                   crash_after_consume: bool = False, unauthorized_digests: bool = True,
                   primes_per_node: int = PRIMES_PER_NODE) -> None:
    """TEST ONLY: node i's node.toml (made by ``init`` or ``add-node``) with its slice of
    the fixture primes and the test switches."""
    primes = fixture_keys.test_primes(1024)
    if i * primes_per_node > len(primes):
        raise ValueError("not enough TEST ONLY fixture primes for that many nodes")
    path = root / f"node{i}" / "node.toml"
    cfg = load_node_config(path)
    pool = root / f"node{i}" / "TEST_ONLY_primes.json"
    chunk = primes[primes_per_node * (i - 1): primes_per_node * i]
    write_pool_atomic(pool, PrimePool(1024, tuple(chunk), test_material=True))
    cfg = dataclasses.replace(cfg, prime_pool=pool,
                              metrics_listen=cfg.metrics_listen if metrics else None)
    switches = NodeSwitches(allow_test_primes=True, crash_after_consume=crash_after_consume,
                            sign_unauthorized_digests=unauthorized_digests)
    path.write_text(dump_test_node_config(cfg, switches))


@contextmanager
def in_process_cluster(root: Path, nodes: int, threshold: int, *,
                       unauthorized_digests: bool = True) -> Iterator[Coordinator]:
    make_cluster(root, nodes, threshold, unauthorized_digests=unauthorized_digests)
    with ExitStack() as stack:
        for i in range(1, nodes + 1):
            stack.enter_context(running_test_node(root / f"node{i}" / "node.toml"))
        coordinator = Coordinator(load_coordinator_config(root), timeout=120.0)
        stack.callback(coordinator.close)
        yield coordinator


def node_command(config: Path) -> list[str]:
    """How to start the node of ``config``: the TEST ONLY entry point if it has test
    switches (``mpcnode serve`` refuses them), else the production daemon."""
    module = "test_only.node_daemon" if TESTING_SECTION in read_config(config) else "mpcnode"
    return [sys.executable, "-m", module, "serve", "--config", str(config)]


class ProcessCluster:
    """Signer nodes as real processes (``node_command``)."""

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.env = env  # None: this process's environment
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def config(self, i: int) -> Path:
        return self.root / f"node{i}" / "node.toml"

    def start(self, i: int) -> None:
        with (self.root / f"node{i}" / "node.log").open("ab") as log:
            self.procs[i] = subprocess.Popen(node_command(self.config(i)),
                                             stdout=log, stderr=log, env=self.env)

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
