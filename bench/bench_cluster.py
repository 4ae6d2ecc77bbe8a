"""Benchmark of the signer cluster over real mutual TLS on loopback (3-of-5).

Starts five ``mpcnode serve`` processes (TEST ONLY fixture primes, so aux info does not
wait for safe-prime generation), runs keygen + aux info, fills a presignature pool and
measures, in the same run:

  * online sign latency (p50, p99) and throughput with a warm pool, both for the bare
    protocol (TEST ONLY setting: nodes sign a digest without a policy check) and for the
    production zero-trust path (each node decodes the transaction, verifies the
    initiator's WebAuthn assertion and re-evaluates the signed policy, then journals),
  * presign time per signature (wall clock, 3 signers),
  * keygen + aux info time,
  * a plain coincurve single-key sign, and a bare mTLS gRPC round trip (health check),

and prints a table. Target: online sign p50 within 4x one bare mTLS round trip.

    python bench/bench_cluster.py [--signs 200] [--presigs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cluster_harness import ProcessCluster, make_cluster
from coincurve import PrivateKey
from grpc_health.v1 import health_pb2

from coordinator.authorization import to_proto
from coordinator.coordinator import Coordinator
from mpcnode.cluster_config import load_coordinator_config
from oms_core.authorization import RelyingParty, SigningRequest
from oms_core.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.chain.ethereum_tx import TYPE_EIP1559, UnsignedTx
from oms_core.demo_people import enrol
from oms_core.policy.document import load_policy


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signs", type=int, default=100)
    ap.add_argument("--presigs", type=int, default=20, help="presign runs timed")
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
        co.presign(kg.key_id, signers)
        presign_times.append(time.perf_counter() - t0)
    # Fill the pool for the signing run (not timed).
    need = 2 * args.signs + 10 - co.pool_level(kg.key_id, signers)
    print(f"filling the pool with {need} more presignatures …", file=sys.stderr)
    co.presign(kg.key_id, signers, count=max(0, need))

    healthy = co.healthy()
    digest = hashlib.sha256(b"bench").digest()
    for _ in range(5):  # warm-up: connections, caches
        co.sign(kg.key_id, digest, healthy=healthy)
    sign_lat = []
    t_all = time.perf_counter()
    for _ in range(args.signs):
        t0 = time.perf_counter()
        co.sign(kg.key_id, digest, healthy=healthy)
        sign_lat.append(time.perf_counter() - t0)
    throughput = args.signs / (time.perf_counter() - t_all)

    zt_lat, zt_throughput = zero_trust_signing(co, kg.key_id, args.root, healthy, args.signs)

    client = co.clients[1]
    rtt = []
    for _ in range(args.signs):
        t0 = time.perf_counter()
        client.healthy(timeout=5)
        rtt.append(time.perf_counter() - t0)

    # The floor for any t = 3 online phase: one bare round trip to each signer at once.
    health_req = health_pb2.HealthCheckRequest(service="")
    rtt3 = []
    for _ in range(args.signs):
        t0 = time.perf_counter()
        futures = [co.clients[i].health_stub.Check.future(health_req, timeout=5)
                   for i in signers]
        for f in futures:
            f.result()
        rtt3.append(time.perf_counter() - t0)

    key = PrivateKey(secrets.token_bytes(32))
    single = []
    for _ in range(args.signs):
        t0 = time.perf_counter()
        key.sign(digest, hasher=None)
        single.append(time.perf_counter() - t0)

    ms = 1000.0
    rows = [
        ("bare mTLS gRPC round trip (health)", pct(rtt, 50) * ms, pct(rtt, 99) * ms, ""),
        ("3 bare round trips at once (1/signer)", pct(rtt3, 50) * ms, pct(rtt3, 99) * ms,
         "floor of a 3-signer round"),
        ("coincurve single-key sign", pct(single, 50) * ms, pct(single, 99) * ms, ""),
        ("threshold sign, 3-of-5, warm pool", pct(sign_lat, 50) * ms, pct(sign_lat, 99) * ms,
         f"{throughput:.0f} sig/s sequential"),
        ("  same, zero-trust (tx + WebAuthn + policy)", pct(zt_lat, 50) * ms,
         pct(zt_lat, 99) * ms, f"{zt_throughput:.0f} sig/s sequential"),
        ("presign (3 signers, wall clock)", statistics.median(presign_times) * ms,
         pct(presign_times, 99) * ms, f"{len(presign_times)} runs"),
        ("keygen, 5 nodes", t_keygen * ms, t_keygen * ms, "1 run"),
        ("aux info, 5 nodes (fixture primes)", t_aux * ms, t_aux * ms, "1 run"),
    ]
    print(f"\n{'operation':<40}{'p50 ms':>10}{'p99 ms':>10}  notes")
    print("-" * 78)
    for name, p50, p99, note in rows:
        print(f"{name:<40}{p50:>10.2f}{p99:>10.2f}  {note}")
    ratio = pct(sign_lat, 50) / pct(rtt, 50)
    print(f"\nonline sign p50 = {ratio:.1f} x bare mTLS round trip (target: <= 4x), "
          f"{pct(sign_lat, 50) / pct(rtt3, 50):.1f} x three bare round trips at once; "
          f"zero-trust path {pct(zt_lat, 50) / pct(rtt, 50):.1f} x")
    return 0


SINK = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")
ZERO_TRUST_POLICY = """
version = 1
name = "bench"
cooldown_seconds = 0

[[assets]]
symbol = "ETH"
chain_id = 1
contract = "native"
decimals = 18
min_usd_price = 1000

[address_book.sink]
address = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
chain_id = 1
added_at = 0
kind = "wallet"

[[limits]]
role = "trader"
max_single_usd = 1000000000
max_daily_usd = 1000000000

[[rules]]
name = "trader-within-limits"
initiator_roles = ["trader"]
destination = "address_book"
within_limits = true
action = "allow"
"""


def zero_trust_signing(co: Coordinator, key_id: bytes, root: Path, healthy: list[int],
                       count: int) -> tuple[list[float], float]:
    """Sign ``count`` Ethereum transfers through the nodes' policy checks. The trader's
    assertions are made before timing (that is the user's authenticator, not the
    signing path)."""
    rp = RelyingParty("bench.local", "https://bench.local")
    registry, people = enrol(rp, [("trader", ["trader"])], seed=b"bench")
    bundle = make_bundle(load_policy(ZERO_TRUST_POLICY), rp, registry)
    co.install_policy(signed_bundle_json(bundle, load_admin_keys(root)))
    prepared = []
    for n in range(count + 5):
        tx = UnsignedTx(TYPE_EIP1559, 1, n, SINK,
                        10**15, b"", 21000, max_fee_per_gas=2 * 10**9,
                        max_priority_fee_per_gas=10**9)
        req = SigningRequest(f"bench-{n}", key_id, (), tx.encode(), tx.signing_digest(),
                             "trader", "2000")
        prepared.append((req, to_proto(req, bundle.bundle_hash,
                                       [people["trader"].approve(rp, req, bundle.bundle_hash)])))
    for req, auth in prepared[:5]:  # warm-up
        co.sign(key_id, req.digest, request_id=req.request_id, authorization=auth,
                healthy=healthy)
    lat = []
    t_all = time.perf_counter()
    for req, auth in prepared[5:]:
        t0 = time.perf_counter()
        co.sign(key_id, req.digest, request_id=req.request_id, authorization=auth,
                healthy=healthy)
        lat.append(time.perf_counter() - t0)
    return lat, count / (time.perf_counter() - t_all)


if __name__ == "__main__":
    sys.exit(main())
