"""Benchmark of the signer cluster over real mutual TLS on loopback (3-of-5).

Starts five node processes (``python -m test_only.node_daemon``: TEST ONLY fixture primes,
so aux info does not wait for safe-prime generation; the production server code), runs
keygen + aux info, fills a presignature pool and
measures, in the same run:

  * online sign latency (p50, p99) with a warm pool, both for the bare protocol (TEST
    ONLY setting: nodes sign a digest without a policy check) and for the production
    zero-trust path (each node decodes the transaction, verifies the initiator's WebAuthn
    assertion and re-evaluates the signed policy, then journals); every signature is
    re-randomized (docs/rerandomization.md), and the same pool serves a BIP32 child and
    a never-used path each time (first signature of a fresh deposit address),
  * the re-randomization's own cost per node, in process: the hash τ, the scalar
    multiplication τ·R, both with the share adjustment, and a fresh path's derivation,
  * a plain coincurve single-key sign, one bare mTLS gRPC round trip (health check) and
    three at once (one per signer, with the coordinator's own fan-out),
  * a repeat of an answered sign request (the same calls, answered from each node's record
    without a journal write: what the durable write costs shows as the difference),
  * the journal's durable write (record + fdatasync) alone and on three files at once,
  * throughput with several callers signing at once,
  * presign time per signature (wall clock, 3 signers), keygen + aux info time,

and prints a table. The latency rows are sampled in one loop, one after the other, so every
row sees the same machine. Target: online sign p50 within 4x one bare mTLS round trip.

    python bench/bench_cluster.py [--signs 200] [--presigs 20] [--callers 4]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coincurve import PrivateKey
from grpc_health.v1 import health_pb2

from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.crypto import bip32
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol.presignature import PresignaturePublic
from mpcnode.protocol.sign import rerandomize, rerandomizer
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.demo.demo_people import enrol
from testing.cluster_harness import ProcessCluster, make_cluster
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.authorization import RelyingParty, SigningRequest
from zero_trust.policy.document import load_policy


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signs", type=int, default=100)
    ap.add_argument("--presigs", type=int, default=20, help="presign runs timed")
    ap.add_argument("--callers", type=int, default=4, help="threads in the concurrent run")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cluster"
        make_cluster(root, 5, 3)
        cluster = ProcessCluster(root)
        for i in range(1, 6):
            cluster.start(i)
        coordinator = Coordinator(load_coordinator_config(root))
        try:
            cluster.wait_healthy(coordinator, {1, 2, 3, 4, 5})
            args.root = root
            return run(coordinator, args)
        finally:
            coordinator.close()
            cluster.stop_all()


def run(co: Coordinator, args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    kg, _ = co.keygen()
    t_keygen = time.perf_counter() - t0
    t0 = time.perf_counter()
    co.aux_info(kg.key_id)
    t_aux = time.perf_counter() - t0
    signers = (1, 2, 3)

    presign_times = []
    for _ in range(args.presigs):
        t0 = time.perf_counter()
        [sample] = co.presign(kg.key_id, signers)
        presign_times.append(time.perf_counter() - t0)
    # Fill the pool for the signing runs (not timed): bare (root, child, fresh path) and
    # zero-trust, warm-ups, and the concurrent run.
    need = 5 * args.signs + 20 - co.pool_level(kg.key_id, signers)
    print(f"filling the pool with {need} more presignatures …", file=sys.stderr)
    co.presign(kg.key_id, signers, count=max(0, need))

    healthy = co.healthy()
    digest = hashlib.sha256(b"bench").digest()
    zero_trust = ZeroTrust(co, kg.key_id, args.root, 2 * args.signs + 5)
    for _ in range(5):  # warm-up: connections, caches
        co.sign(kg.key_id, digest, healthy=healthy)
        zero_trust.sign_next(healthy)

    # Every row is sampled in the same loop, one after the other, so a VM that slows down
    # for a while slows all of them alike and the ratios stay fair.
    health_req = health_pb2.HealthCheckRequest(service="")
    fan_out = ThreadPoolExecutor(max_workers=len(signers) - 1)

    def three_round_trips() -> None:
        # The coordinator's own fan-out for Sign: worker threads plus the calling thread.
        futures = [fan_out.submit(co.clients[i].health_stub.Check, health_req, timeout=5)
                   for i in signers[1:]]
        co.clients[signers[0]].health_stub.Check(health_req, timeout=5)
        for f in futures:
            f.result()

    # One answered sign request, repeated: the same three Sign calls and handlers, but
    # every node answers from its record, with no presignature use and no journal write.
    repeat = co.sign(kg.key_id, digest, request_id="bench-repeat", healthy=healthy)

    def repeated_sign() -> None:
        if co.sign(kg.key_id, digest, request_id="bench-repeat", healthy=healthy) != repeat:
            raise AssertionError("a repeated request got another signature")

    key = PrivateKey(secrets.token_bytes(32))
    fresh = iter(range(1, 1 << 30))  # m/9/n: a path nobody signed under before
    rows: dict[str, list[float]] = {n: [] for n in ("rtt", "rtt3", "single", "sign", "child",
                                                    "fresh", "zt", "ztq", "repeat")}
    steps: list[tuple[str, Callable[[], object]]] = [
        ("rtt", lambda: co.clients[1].healthy(timeout=5)),
        ("rtt3", three_round_trips),
        ("single", lambda: key.sign(digest, hasher=None)),
        ("sign", lambda: co.sign(kg.key_id, digest, healthy=healthy)),
        ("child", lambda: co.sign(kg.key_id, digest, path=(0, 7), healthy=healthy)),
        ("fresh", lambda: co.sign(kg.key_id, digest, path=(9, next(fresh)), healthy=healthy)),
        ("zt", lambda: zero_trust.sign_next(healthy)),
        ("ztq", lambda: zero_trust.record_and_read_next(healthy)),
        ("repeat", repeated_sign),
    ]
    for n in range(args.signs):
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            rows[name].append(time.perf_counter() - t0)
        if (n + 1) % 50 == 0:
            print(f"  {n + 1}/{args.signs} rounds", file=sys.stderr)
    fan_out.shutdown()

    cost = rerandomization_cost(sample, kg.public_key, kg.chain_code, digest, args.signs)
    alone, together = durable_writes(args.root, len(signers), args.signs)
    concurrent_rate = concurrent_signing(co, kg.key_id, digest, healthy, args.signs,
                                         args.callers)

    def rate(name: str) -> str:
        return f"{len(rows[name]) / sum(rows[name]):.0f}/s one at a time"

    ms = 1000.0
    table = [
        ("bare mTLS gRPC round trip (health)", rows["rtt"], ""),
        ("3 bare round trips at once (1/signer)", rows["rtt3"], "floor of a 3-signer round"),
        ("coincurve single-key sign", rows["single"], ""),
        ("threshold sign, 3-of-5, warm pool", rows["sign"], rate("sign")),
        ("  same, BIP32 child m/0/7 (same pool)", rows["child"], "re-randomized + tweak"),
        ("  same, a never-used path m/9/n", rows["fresh"], "first sign of an address"),
        ("  same, zero-trust (tx + WebAuthn + policy)", rows["zt"], rate("zt")),
        ("    of which record + read of the spend", rows["ztq"], "2 of its 3 rounds"),
        ("  repeat of an answered request", rows["repeat"], "no journal write"),
    ]
    print(f"\n{'operation':<44}{'p50 ms':>9}{'p99 ms':>9}  notes")
    print("-" * 82)
    for name, samples, note in table:
        print(f"{name:<44}{pct(samples, 50) * ms:>9.2f}{pct(samples, 99) * ms:>9.2f}  {note}")
    us = 1e6
    for name, samples, note in (
            ("re-randomization per node: hash τ", cost["hash"], "µs, in process"),
            ("  scalar multiplication τ·R", cost["mul"], "µs, in process"),
            ("  all of it: τ, R', r, σ_i adjustment", cost["all"], "µs, per node and signature"),
            ("  BIP32 derivation of a new 2-level path", cost["derive"], "µs, then cached")):
        print(f"{name:<44}{pct(samples, 50) * us:>9.1f}{pct(samples, 99) * us:>9.1f}  {note}")
    for name, samples, note in (
            ("journal write + fdatasync, one node alone", alone, "this machine's disk"),
            (f"  same, {len(signers)} nodes at once (slowest)", together, "one shared disk")):
        print(f"{name:<44}{pct(samples, 50) * ms:>9.2f}{pct(samples, 99) * ms:>9.2f}  {note}")
    print(f"{'threshold sign, ' + str(args.callers) + ' concurrent callers':<44}{'':>9}{'':>9}"
          f"  {concurrent_rate:.0f} sig/s")
    print(f"{'presign (3 signers, wall clock)':<44}{statistics.median(presign_times) * ms:>9.0f}"
          f"{pct(presign_times, 99) * ms:>9.0f}  {len(presign_times)} runs")
    print(f"{'keygen, 5 nodes':<44}{t_keygen * ms:>9.0f}{'':>9}  1 run")
    print(f"{'aux info, 5 nodes (fixture primes)':<44}{t_aux * ms:>9.0f}{'':>9}  1 run")
    rtt = pct(rows["rtt"], 50)
    print(f"\nonline sign p50 = {pct(rows['sign'], 50) / rtt:.1f} x bare mTLS round trip "
          f"(target: <= 4x), {pct(rows['sign'], 50) / pct(rows['rtt3'], 50):.1f} x three bare "
          f"round trips at once; zero-trust path {pct(rows['zt'], 50) / rtt:.1f} x")
    return 0


def rerandomization_cost(pub: PresignaturePublic, root: Point, chain_code: bytes,
                         digest: bytes, count: int) -> dict[str, list[float]]:
    """What re-randomizing adds to a node's signing step (docs/rerandomization.md): the
    hash τ, the multiplication R' = τ·R, and the whole ``rerandomize`` plus the share
    adjustment (an inversion and a few products mod q); and what a path costs the first
    time (its BIP32 derivation; nodes and coordinator cache it afterwards)."""
    path = (0, 7)
    derived = bip32.derive(root, chain_code, path)
    tau = rerandomizer(pub, derived, path, digest)
    out: dict[str, list[float]] = {"hash": [], "mul": [], "all": [], "derive": []}
    k, chi = 3, 5  # stand-ins: the adjustment's cost does not depend on the values
    for n in range(count):
        t0 = time.perf_counter()
        rerandomizer(pub, derived, path, digest)
        t1 = time.perf_counter()
        _ = pub.R * tau
        t2 = time.perf_counter()
        rr = rerandomize(pub, chain_code, path, digest, derived)
        _ = pow(rr.tau, -1, Q) * (k * rr.m + rr.r * (chi + rr.tweak * k)) % Q
        t3 = time.perf_counter()
        bip32.derive(root, chain_code, (8, n))
        t4 = time.perf_counter()
        for name, dt in (("hash", t1 - t0), ("mul", t2 - t1), ("all", t3 - t2),
                         ("derive", t4 - t3)):
            out[name].append(dt)
    return out


def durable_writes(root: Path, nodes: int, count: int) -> tuple[list[float], list[float]]:
    """The consumption journal's durable step (a record written into preallocated zeros,
    then ``fdatasync``), in files next to the nodes' data: alone, and on ``nodes`` files at
    the same moment, as the signers of one signature do when they share this machine's
    disk (their cache flushes queue behind each other; separate hosts would not)."""
    files = []
    for k in range(nodes):
        path = root / f"bench-journal-{k}"
        path.write_bytes(bytes(1 << 18))
        fd = os.open(path, os.O_RDWR)
        os.fsync(fd)
        files.append(fd)
    record = secrets.token_bytes(200)

    def write(fd: int, n: int) -> float:
        t0 = time.perf_counter()
        os.pwrite(fd, record, (n % 64) * 4096)
        os.fdatasync(fd)
        return time.perf_counter() - t0

    alone = [write(files[0], n) for n in range(count)]
    together = []
    start = threading.Barrier(nodes)
    with ThreadPoolExecutor(max_workers=nodes) as pool:
        def at_once(fd: int, n: int) -> float:
            start.wait()
            return write(fd, n)

        for n in range(count):
            together.append(max(pool.map(at_once, files, [n] * nodes)))
    for fd in files:
        os.close(fd)
    return alone, together


def concurrent_signing(co: Coordinator, key_id: bytes, digest: bytes, healthy: list[int],
                       count: int, callers: int) -> float:
    """Signatures per second with ``callers`` threads signing at once."""
    left = [count]
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            co.sign(key_id, digest, healthy=healthy)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count / (time.perf_counter() - t0)


ZERO_TRUST_POLICY = transfer_policy("bench", max_single_usd=10**9, max_daily_usd=10**9)


class ZeroTrust:
    """Ethereum transfers signed through the nodes' policy checks. The trader's
    assertions are made up front (that is the user's authenticator, not the signing
    path)."""

    def __init__(self, co: Coordinator, key_id: bytes, root: Path, count: int) -> None:
        self.co = co
        self.key_id = key_id
        rp = RelyingParty("bench.local", "https://bench.local")
        registry, people = enrol(rp, [("trader", ["trader"])], seed=b"bench")
        bundle = make_bundle(load_policy(ZERO_TRUST_POLICY), rp, registry)
        co.install_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        self.prepared = []
        for n in range(count):
            tx = UnsignedTx(TYPE_EIP1559, 1, n, SINK, 10**15, b"", 21000,
                            max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9)
            req = SigningRequest(f"bench-{n}", key_id, (), tx.encode(), tx.signing_digest(),
                                 "trader", "2000", int(time.time()) + 3600)
            approval = people["trader"].approve(rp, req, bundle.bundle_hash)
            self.prepared.append((req, to_proto(req, bundle.bundle_hash, [approval])))
        self.prepared.reverse()

    def sign_next(self, healthy: list[int]) -> None:
        req, auth = self.prepared.pop()
        self.co.sign(self.key_id, req.digest, request_id=req.request_id, authorization=auth,
                     healthy=healthy)

    def record_and_read_next(self, healthy: list[int]) -> None:
        """The spend quorum's two rounds alone (limits across signer subsets), on a request
        that is then never signed."""
        req, auth = self.prepared.pop()
        self.co.record_and_read_spend(self.key_id, (), req.digest, auth, set(healthy))


if __name__ == "__main__":
    sys.exit(main())
