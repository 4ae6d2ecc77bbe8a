"""``python -m coordinator.demo``: a local signer cluster that signs, on embedded defaults.

Makes a 2-of-3 cluster in a temporary directory (CA, certificates, identity keys,
configs), starts three ``mpcnode serve`` processes on loopback over mutual TLS, runs the
key ceremony (keygen + aux info, each node generating its own safe primes), verifies
the ceremony transcript, signs a digest with a healthy 2-subset, checks the signature
with OpenSSL, and stops the nodes. Progress goes to stderr; ``--json`` prints one JSON
object to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from coordinator import ceremony_cli, transcript
from coordinator.coordinator import Coordinator, CoordinatorError
from coordinator.transcript_verify import verify
from mpcnode.cluster_config import load_coordinator_config


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(root: Path, nodes: int, threshold: int, digest: bytes) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if ceremony_cli.main(["init", "--nodes", str(nodes), "--threshold", str(threshold),
                          "--out", str(root), "--base-port", "7700",
                          "--metrics-base-port", "9700"]) != 0:
        raise CoordinatorError("mpc-ceremony init failed")
    if ceremony_cli.main(["up", str(root)]) != 0:
        raise CoordinatorError("the nodes did not come up; see the node logs")
    timings["init_and_up"] = time.perf_counter() - t0
    try:
        config = load_coordinator_config(root)
        with Coordinator(config) as co:
            t0 = time.perf_counter()
            kg, rec1 = co.keygen(progress=_say)
            timings["keygen"] = time.perf_counter() - t0
            _say("aux info: every node generates two safe primes and proves its Paillier key …")
            t0 = time.perf_counter()
            _, rec2 = co.aux_info(kg.key_id, progress=_say)
            timings["aux_info"] = time.perf_counter() - t0
            t = transcript.from_records(config.cluster, kg.key_id, kg.public_key.to_bytes(),
                                        [rec1, rec2], kg.threshold)
            transcript.write(root / "transcripts" / "demo.json", t)
            checked = verify(transcript.load(root / "transcripts" / "demo.json"))
            _say(f"ceremony transcript verified: {checked.messages} signed messages")
            t0 = time.perf_counter()
            healthy = co.healthy()
            sig = co.sign(kg.key_id, digest, healthy=healthy)
            timings["presign_and_sign"] = time.perf_counter() - t0
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(),
                                                               kg.public_key.to_bytes())
            pub.verify(sig.der(), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            _say("signature verified with OpenSSL")
            return {
                "public_key": kg.public_key.to_bytes().hex(),
                "ethereum_address": checked.ethereum_address,
                "key_id": kg.key_id.hex(),
                "digest": digest.hex(),
                "r": format(sig.r, "064x"),
                "s": format(sig.s, "064x"),
                "recovery_id": sig.recovery_id,
                "threshold": threshold,
                "nodes": nodes,
                "transcript": str(root / "transcripts" / "demo.json"),
                "seconds": {k: round(v, 3) for k, v in timings.items()},
            }
    finally:
        ceremony_cli.main(["down", str(root)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coordinator.demo", description=__doc__)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--threshold", type=int, default=2)
    ap.add_argument("--digest-hex", default=hashlib.sha256(b"hello").hexdigest())
    ap.add_argument("--dir", type=Path, default=None,
                    help="keep the cluster here (default: a temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        digest = bytes.fromhex(args.digest_hex)
    except ValueError:
        ap.error("--digest-hex is not hexadecimal")
    if len(digest) != 32:
        ap.error("--digest-hex must be 32 bytes")
    try:
        if args.dir is not None:
            result = run(args.dir, args.nodes, args.threshold, digest)
        else:
            with tempfile.TemporaryDirectory(prefix="mpc-demo-") as tmp:
                result = run(Path(tmp) / "cluster", args.nodes, args.threshold, digest)
    except CoordinatorError as exc:
        _say(f"demo failed: {exc}")
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>17}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
