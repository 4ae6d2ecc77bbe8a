"""TEST ONLY: database files as a release wrote them, kept so that the tests open them with
the current code (schema migrations from an unversioned file, DESIGN §5).

    python -m testing.database_fixtures OUT_DIR

writes, with whatever code is importable (the committed files under
``testing/fixtures/databases/`` were made on the code of the commit their README names):

- ``OUT/node1``, ``OUT/node2``: the data directories of the two signer nodes of a 2-of-2
  key, sealed under ``PASSPHRASE`` (``seal.salt``, ``seal.kcv``, ``keys/*.sealed``). Each
  holds ``PRESIGNATURES`` presignatures (signers 1 and 2, root path) in
  ``presignatures.sqlite3``; the first ``len(LEDGER)`` of them are consumed by the requests
  of ``LEDGER``, signed through the node's policy check, so ``policy/bundle.json`` (signed
  by ``ADMIN``) and ``policy.sqlite3`` hold tina's ledger and WebAuthn counter. The session
  nonce ``SESSION_NONCE`` is recorded as used.
- ``OUT/oms.sqlite3``: an OMS database whose policy (signed by admin1 and admin2) made its
  users; tina logged in, submitted ``SIGNED_REQUEST`` (allowed, signed by the stand-in
  signer) and ``PENDING_REQUEST`` (over her limit, waiting for a risk officer); the chain
  nonce manager reserved and used a nonce for ``SIGNED_REQUEST`` and reserved one for
  ``PENDING_REQUEST``; the audit log holds every step and one signed tree head.

Every key here is public test material.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.protocol.key_share import KeyShare
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.sign import SignatureShare, rerandomize, sign_share
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.sim.simulator import run_aux_info, run_keygen, run_presign
from mpcnode.state.node_store import NodeStore
from mpcnode.state.policy_state import PolicyState
from mpcnode.state.seal import Sealer, load_or_create_salt
from mpcnode.state.seal_choice import KCV_FILE, SALT_FILE
from oms_core.app.bundle_signing import make_bundle, signed_bundle_json
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.signing_key import AuditSigner
from oms_core.chain.nonce_manager import NonceManager
from oms_core.chain.prices import FixedPrices
from oms_core.demo.demo_people import Person, enrol
from test_only.seeded_random import SeededRandom
from testing import fixture_keys
from testing.oms_rpc_support import SingleKeySigner, policy_text
from testing.transfer_policy import SINK, transfer_policy
from zero_trust.authorization import RelyingParty, SigningRequest, Verdict
from zero_trust.policy.document import load_policy

FIXTURES = Path(__file__).parent / "fixtures" / "databases"
FIXTURE_NOW = 1_800_000_000.0  # the clock of every signature and OMS action here

# --- signer nodes ------------------------------------------------------------------------
PARTIES = (1, 2)
ROOT: tuple[int, ...] = ()
PASSPHRASE = b"TEST ONLY database fixture passphrase"
PRESIGNATURES = 4
SESSION_NONCE = hashlib.sha256(b"database-fixtures/session").digest()
NODE_RP = RelyingParty("node.test", "https://node.test")
NODE_PEOPLE_SEED = b"database-fixtures/node"
ADMIN = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"database-fixtures/admin").digest())
MAX_DAILY_USD = 15000
ETH_USD = "1000"  # the price each node request carries
LEDGER = (("fixture-r0", 6), ("fixture-r1", 6))  # request id, ETH: 12,000 USD in all

# --- OMS -----------------------------------------------------------------------------------
OMS_RP = RelyingParty("oms.test", "https://oms.test")
OMS_PEOPLE = (("tina", ("trader",)), ("rita", ("risk_officer",)),
              ("admin1", ("admin",)), ("admin2", ("admin",)))
OMS_PEOPLE_SEED = b"database-fixtures/oms"
OMS_KEY_ID = bytes.fromhex("11" * 32)
OMS_ADMINS = {f"admin{i}": Ed25519PrivateKey.from_private_bytes(bytes([i]) * 32)
              for i in (1, 2)}
AUDIT_SEED = b"\x07" * 32
OMS_PRICES = {"ETH": "2000"}
TREASURY = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
SIGNED_REQUEST = "fixture-signed"  # 1 ETH, allowed
PENDING_REQUEST = "fixture-pending"  # 10 ETH = 20,000 USD, over tina's 10,000: approvals
NONCE_CHAIN = 1337


def copy_release(commit: str, tmp: Path) -> Path:
    """A writable copy of the files one release wrote (``FIXTURES / commit``)."""
    return Path(shutil.copytree(FIXTURES / commit, tmp / commit))


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def node_admins() -> dict[str, bytes]:
    return {"admin": raw_public(ADMIN)}


def oms_admins() -> dict[str, bytes]:
    return {a: raw_public(k) for a, k in OMS_ADMINS.items()}


def node_sealer(data_dir: Path) -> Sealer:
    """The node's sealer, as ``mpcnode serve`` builds it (salt and key-check value)."""
    sealer = Sealer.from_passphrase(PASSPHRASE, load_or_create_salt(data_dir / SALT_FILE))
    sealer.verify_kcv(data_dir / KCV_FILE)
    return sealer


def node_people() -> dict[str, Person]:
    """Tina, with a fresh authenticator (its counter restarts: the nodes remember more)."""
    return enrol(NODE_RP, [("tina", ["trader"])], seed=NODE_PEOPLE_SEED)[1]


def node_request(request_id: str, eth: int, nonce: int, key_id: bytes) -> SigningRequest:
    tx = UnsignedTx(TYPE_EIP1559, 1, nonce, SINK, eth * 10**18, b"", 21000,
                    max_fee_per_gas=2, max_priority_fee_per_gas=1)
    return SigningRequest(request_id, key_id, (), tx.encode(), tx.signing_digest(), "tina",
                          ETH_USD, int(FIXTURE_NOW) + 3600)


def signing(store: NodeStore, share: KeyShare, presig_id: bytes, request: SigningRequest,
            note: bytes = b"") -> SignatureShare:
    """σ_i of this node for ``request`` from one presignature (journaled, at most once)."""
    sset = SignerSet(share.public, PARTIES)

    def compute(p: Presignature) -> SignatureShare:
        return sign_share(p, sset, rerandomize(p.public, share.public.chain_code,
                                               request.path, request.digest))

    return store.sign_once(presig_id, request.request_id, compute, note)


def oms_core(db: Path, clock: list[float]) -> tuple[OmsCore, SingleKeySigner]:
    """The OMS over ``db`` with the stand-in signer, its clock ``clock[0]``."""
    signer = SingleKeySigner(oms_admins(), 2, lambda: clock[0])
    core = OmsCore(OmsConfig(db, OMS_KEY_ID, OMS_RP, oms_admins(), 2), signer,
                   FixedPrices(OMS_PRICES), AuditSigner.from_seed(AUDIT_SEED),
                   lambda: clock[0])
    return core, signer


def write_nodes(out: Path) -> None:
    rng = SeededRandom(b"database-fixtures")
    shares = run_keygen(PARTIES, 2, b"database-fixtures/keygen".ljust(32, b"\0"), rng)
    key_id = shares[1].public.key_id
    primes = fixture_keys.test_primes(1024)  # TEST ONLY public primes
    aux = run_aux_info(PARTIES, key_id, DEFAULT_PROFILE,
                       {i: (primes[2 * i], primes[2 * i + 1]) for i in PARTIES},
                       b"database-fixtures/aux".ljust(32, b"\0"), rng)
    pools = [run_presign(shares, aux, PARTIES, f"database-fixtures/p{n}".encode()
                         .ljust(32, b"\0"), rng) for n in range(PRESIGNATURES)]
    registry, people = enrol(NODE_RP, [("tina", ["trader"])], seed=NODE_PEOPLE_SEED)
    bundle = make_bundle(load_policy(transfer_policy(
        "fixture", max_single_usd=MAX_DAILY_USD, max_daily_usd=MAX_DAILY_USD)),
        NODE_RP, registry)
    signed_bundle = signed_bundle_json(bundle, {"admin": ADMIN})
    approvals = {rid: people["tina"].approve(NODE_RP, node_request(rid, eth, n, key_id),
                                             bundle.bundle_hash)
                 for n, (rid, eth) in enumerate(LEDGER)}
    for i in PARTIES:
        data_dir = out / f"node{i}"
        data_dir.mkdir(mode=0o700, parents=True)
        store = NodeStore(data_dir, node_sealer(data_dir))
        store.put_key_share(shares[i])
        store.put_aux_info(key_id, aux[i])
        for pool in pools:
            store.add_presignature(pool[i])
        store.claim_session_nonce(SESSION_NONCE, "presign")
        policy = PolicyState(data_dir, node_admins(), 1)
        policy.install(signed_bundle)
        policy.attach(store)
        for n, (rid, eth) in enumerate(LEDGER):
            request = node_request(rid, eth, n, key_id)
            presig_id = pools[n][i].public.session

            def sign(_: Verdict, note: bytes, request: SigningRequest = request,
                     presig_id: bytes = presig_id, share: KeyShare = shares[i],
                     store: NodeStore = store) -> SignatureShare:
                return signing(store, share, presig_id, request, note)

            policy.sign_authorized(request, [approvals[rid]], bundle.bundle_hash,
                                   FIXTURE_NOW, sign)
        store.close()
        policy.close()


def write_oms(out: Path) -> None:
    clock = [FIXTURE_NOW]
    core, _ = oms_core(out / "oms.sqlite3", clock)
    registry, people = enrol(OMS_RP, OMS_PEOPLE, seed=OMS_PEOPLE_SEED)
    bundle = make_bundle(load_policy(policy_text(1)), OMS_RP, registry)
    core.bootstrap_policy(signed_bundle_json(bundle, OMS_ADMINS))
    tina = people["tina"]
    token = tina.login(OMS_RP, core)
    for request_id, eth in ((SIGNED_REQUEST, "1"), (PENDING_REQUEST, "10")):
        clock[0] += 1
        req = core.submit(token, Submission("ETH", eth, TREASURY), request_id)
        core.confirm(token, request_id, tina.sign_challenge(OMS_RP, core.challenge_of(req)))
    nonces = NonceManager(core.conn)
    address = TREASURY  # any address: the manager keeps nonces per (chain, address)
    used = nonces.reserve(NONCE_CHAIN, address, chain_pending=0, owner=SIGNED_REQUEST)
    nonces.mark_used(NONCE_CHAIN, address, used)
    nonces.reserve(NONCE_CHAIN, address, chain_pending=0, owner=PENDING_REQUEST)
    clock[0] += 1
    core.sign_tree_head()
    core.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m testing.database_fixtures OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=False)
    write_nodes(out)
    write_oms(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
