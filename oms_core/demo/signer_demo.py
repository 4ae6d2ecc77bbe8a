"""``python -m coordinator.signer_demo``: a local signer cluster that signs, on embedded defaults.

Makes a 2-of-3 cluster in a temporary directory (CA, certificates, identity keys,
admin keys, configs), starts three ``mpcnode serve`` processes on loopback over mutual
TLS, runs the key ceremony (keygen + aux info, each node generating its own safe primes),
verifies the ceremony transcript, then signs under zero-trust policy checks: the admins
sign the example policy bundle (with a trader and a risk officer enrolled on DEMO ONLY
software WebAuthn authenticators) and every node installs it; an Ethereum transfer within
the trader's limit signs on the trader's own assertion; one over the limit is refused
by the nodes until an approver and the risk officer approve. Each signed transaction is checked with
eth-account (the sender recovers to the threshold key's address) and OpenSSL. Progress
goes to stderr; ``--json`` prints one JSON object to stdout.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_account import Account

import zero_trust.policy
from coordinator import ceremony_cli
from coordinator import ceremony_transcript as transcript
from coordinator.authorization_proto import to_proto
from coordinator.coordinator import Coordinator, SigningRefused
from coordinator.coordinator_errors import CoordinatorError
from coordinator.transcript_verify import verify
from ethereum.hashing import keccak256
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.protocol.results import KeygenResult
from mpcnode.transport.net_address import free_port_runs
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.demo.demo_people import enrol
from zero_trust.authorization import RelyingParty, SigningRequest
from zero_trust.policy.document import read_policy_file

EXAMPLE_POLICY = Path(zero_trust.policy.__file__).parent / "examples" / "default_policy.toml"
DEMO_RP = RelyingParty("oms.localhost", "https://oms.localhost")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(root: Path, nodes: int, threshold: int) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    base = free_port_runs("127.0.0.1", nodes, (0, 2000), 7700)  # 7701… when free
    if ceremony_cli.main(["init", "--nodes", str(nodes), "--threshold", str(threshold),
                          "--out", str(root), "--base-port", str(base),
                          "--metrics-base-port", str(base + 2000)]) != 0:
        raise CoordinatorError("mpc-ceremony init failed")
    try:
        if ceremony_cli.main(["up", str(root)]) != 0:
            raise CoordinatorError("the nodes did not come up; see the node logs")
        timings["init_and_up"] = time.perf_counter() - t0
        config = load_coordinator_config(root)
        with Coordinator(config) as co:
            t0 = time.perf_counter()
            kg, rec1 = co.keygen(progress=_say)
            timings["keygen"] = time.perf_counter() - t0
            _say("aux info: every node generates two safe primes and proves its Paillier key …")
            t0 = time.perf_counter()
            _, rec2 = co.aux_info(kg.key_id, progress=_say)
            timings["aux_info"] = time.perf_counter() - t0
            t = transcript.close(transcript.from_records(
                config.cluster, kg.key_id, kg.public_key.to_bytes(), [rec1, rec2],
                kg.threshold), co.close_transcript(kg.key_id))
            transcript.write(root / "transcripts" / "demo.json", t)
            checked = verify(transcript.load(root / "transcripts" / "demo.json"))
            _say(f"ceremony transcript verified: {checked.messages} signed messages")
            t0 = time.perf_counter()
            signed = _sign_under_policy(co, root, kg)
            timings["policy_and_signing"] = time.perf_counter() - t0
            return {
                "public_key": kg.public_key.to_bytes().hex(),
                "ethereum_address": checked.ethereum_address,
                "threshold_address": checked.ethereum_address,
                "key_id": kg.key_id.hex(),
                "transactions": signed,
                "threshold": threshold,
                "nodes": nodes,
                "transcript": str(root / "transcripts" / "demo.json"),
                "seconds": {k: round(v, 3) for k, v in timings.items()},
            }
    finally:
        ceremony_cli.main(["down", str(root)])


def _sign_under_policy(co: Coordinator, root: Path, kg: KeygenResult) -> list[dict[str, Any]]:
    registry, people = enrol(DEMO_RP, [("tina", ["trader"]), ("rita", ["risk_officer"]),
                                       ("andy", ["approver"])],
                             seed=secrets.token_bytes(32))
    policy = read_policy_file(EXAMPLE_POLICY)
    bundle = make_bundle(policy, DEMO_RP, registry)
    installed = co.install_policy(signed_bundle_json(bundle, load_admin_keys(root)))
    _say(f"policy v{bundle.version} signed by the admin quorum, installed on "
         f"{len(installed)} nodes ({bundle.bundle_hash[:16]}…)")
    chain_id = policy.assets[0].chain_id
    treasury = next(e for e in policy.address_book if e.label == "treasury-cold")
    out = []
    for nonce, (eth, approvers) in enumerate([(Decimal(10), ["tina"]),
                                              (Decimal(200), ["tina", "rita", "andy"])]):
        tx = UnsignedTx(TYPE_EIP1559, chain_id, nonce, bytes.fromhex(treasury.address[2:]),
                        int(eth * 10**18), b"", 21000, max_fee_per_gas=30 * 10**9,
                        max_priority_fee_per_gas=10**9)
        request = SigningRequest(f"demo-{nonce}", kg.key_id, (), tx.encode(),
                                 tx.signing_digest(), "tina", "2000",
                                 int(time.time()) + 3600)
        _say(f"transfer of {eth} ETH to {treasury.label!r} ({request.request_id})")
        if len(approvers) > 1:
            try:
                co.sign(kg.key_id, request.digest, request_id=request.request_id + "/alone",
                        authorization=to_proto(request, bundle.bundle_hash, [
                            people["tina"].approve(DEMO_RP, request, bundle.bundle_hash)]))
                raise CoordinatorError("the nodes signed an over-limit transfer without "
                                       "the risk officer's approval")
            except SigningRefused as exc:
                _say(f"  refused by the nodes without approval: {exc.reason}")
        approvals = [people[w].approve(DEMO_RP, request, bundle.bundle_hash)
                     for w in approvers]
        sig = co.sign(kg.key_id, request.digest, request_id=request.request_id,
                      authorization=to_proto(request, bundle.bundle_hash, approvals))
        raw = tx.signed_raw(sig.r, sig.s, sig.recovery_id)
        sender = Account.recover_transaction(raw)
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(),
                                                           kg.public_key.to_bytes())
        pub.verify(sig.der(), request.digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        _say(f"  signed with approvals of {', '.join(approvers)}; sender {sender} "
             "(eth-account), signature checked by OpenSSL")
        out.append({"request_id": request.request_id, "hash": "0x" + keccak256(raw).hex(),
                    "raw": "0x" + raw.hex(), "sender": sender, "approvals": approvers})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m oms_core.demo.signer_demo", description=__doc__)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--threshold", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None,
                    help="keep the cluster here (default: a temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.dir is not None:
            result = run(args.dir, args.nodes, args.threshold)
        else:
            with tempfile.TemporaryDirectory(prefix="mpc-demo-") as tmp:
                result = run(Path(tmp) / "cluster", args.nodes, args.threshold)
    except CoordinatorError as exc:
        _say(f"demo failed: {exc}")
        return 1
    if not Path(result["transcript"]).exists():
        del result["transcript"]  # it went with the temporary directory
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>17}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
