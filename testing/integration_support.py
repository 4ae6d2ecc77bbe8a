"""TEST ONLY helpers shared by the integration tests: a process cluster that never outlives
its test, and signature verification by OpenSSL (through ``cryptography``), which is
independent of the project's own ECDSA code."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from coordinator import node_process
from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import DEFAULT_MAX_HEAD_AGE_S, load_coordinator_config
from mpcnode.protocol.sign import Signature
from testing.cluster_harness import PRIMES_PER_NODE, ProcessCluster, make_cluster


def openssl_verifies(public_key: bytes, digest: bytes, sig: Signature) -> bool:
    """Does OpenSSL accept ``sig`` (DER) on the 32-byte ``digest`` under the SEC1 key?"""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), public_key)
    try:
        key.verify(sig.der(), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def stop_all(procs: ProcessCluster) -> None:
    """Stop every node process still running (SIGTERM, then SIGKILL if it hangs)."""
    for i in list(procs.procs):
        p = procs.procs.pop(i)
        if p.poll() is None:
            p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@contextlib.contextmanager
def process_cluster(root: Path, nodes: int, threshold: int, *, metrics: bool = False,
                    crash_after_consume: set[int] | None = None,
                    unauthorized_digests: bool = True, primes_per_node: int = PRIMES_PER_NODE,
                    audit_key: bytes | None = None,
                    audit_max_head_age_s: int = DEFAULT_MAX_HEAD_AGE_S
                    ) -> Iterator[tuple[ProcessCluster, Coordinator]]:
    """``nodes`` real node processes (``cluster_harness.node_command``), all healthy, and a
    coordinator. Every process is stopped on exit, whatever happened. Each node's prime
    pool serves ``primes_per_node`` / 2 aux-info sessions."""
    make_cluster(root, nodes, threshold, metrics=metrics,
                 crash_after_consume=crash_after_consume,
                 unauthorized_digests=unauthorized_digests, primes_per_node=primes_per_node,
                 audit_key=audit_key, audit_max_head_age_s=audit_max_head_age_s)
    procs = ProcessCluster(root)
    try:
        for i in range(1, nodes + 1):
            procs.start(i)
        with Coordinator(load_coordinator_config(root), timeout=120.0) as coordinator:
            procs.wait_healthy(coordinator, set(range(1, nodes + 1)), timeout=60.0)
            yield procs, coordinator
    finally:
        stop_all(procs)


def processes_naming(path: Path) -> list[tuple[int, str]]:
    """Every live process (pid, command line) whose command line names ``path`` or a file
    under it: what a daemon started on a directory's configs leaves running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or node_process.start_ticks(int(entry.name)) is None:
            continue  # not a process, gone, or a zombie
        argv = node_process.command_line(int(entry.name)) or []
        if any(str(path) in a for a in argv):
            found.append((int(entry.name), " ".join(argv)))
    return found
