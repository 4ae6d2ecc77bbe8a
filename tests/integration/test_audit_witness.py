"""The signer nodes witness the OMS audit log (DESIGN §4, §6), against three real node
processes whose cluster.toml names the OMS audit key.

An honest OMS signs, and every signer keeps the OMS's newest head. A hostile OMS host
then rewrites the database (an entry changed and every later hash recomputed, the tree
heads deleted) or cuts it short: ``oms audit verify`` alone still passes, as the issue
measured, and ``oms audit verify --witness node:ID`` (or a saved head) fails naming the
witnessed head. A head that is older, inconsistent, signed by another key or missing is
refused by the nodes, and honest signing continues afterwards. So is a head older than
the cluster's ``max_head_age_seconds`` by the node's own clock: an OMS cannot keep showing
the nodes an old head instead of the newest.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordinator.coordinator import AuditHeads, SigningRefused
from coordinator.oms_signer import CoordinatorSigner
from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.state.audit_witness_state import AuditWitnessState
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.requests.request_lifecycle import State
from oms_core.app.service import OmsConfig, OmsCore
from oms_core.app.tx_builder import Submission
from oms_core.audit.audit_cli import EXIT_DEFECT, EXIT_OK, main
from oms_core.audit.log import read_rows
from oms_core.audit.signing_key import AuditSigner, write_public_key
from oms_core.chain.prices import FixedPrices
from oms_core.demo.demo_people import Person, enrol
from testing.audit_tampering import rewrite_entry
from testing.cluster_harness import ProcessCluster
from testing.integration_support import process_cluster
from testing.transfer_policy import SINK_ADDRESS, transfer_policy
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead
from zero_trust.authorization import RelyingParty
from zero_trust.policy.document import load_policy

RP = RelyingParty("oms.test", "https://oms.test")
CHAIN = 1337
TREASURY = SINK_ADDRESS
AUDIT_KEY = AuditSigner.from_seed(b"\x11" * 32)
MAX_HEAD_AGE_S = 45  # short, so that a head ages out within the test; above a signing
POLICY = transfer_policy("audit-witness", max_single_usd=10_000, max_daily_usd=1_000_000,
                         chain_id=CHAIN, cooldown_seconds=3600)


@dataclass
class World:
    core: OmsCore
    signer: CoordinatorSigner
    people: dict[str, Person]
    root: Path
    db: Path
    public_key: Path
    procs: ProcessCluster

    def sign_one(self, eth: str = "0.1") -> str:
        token = self.people["tina"].login(RP, self.core)
        try:
            rid = self.core.submit(token, Submission("ETH", eth, TREASURY)).request_id
            req = self.core.requests.get(rid)
            assertion = self.people["tina"].sign_challenge(RP, self.core.challenge_of(req))
            done = self.core.confirm(token, rid, assertion)
            assert done.state is State.SIGNED
            return rid
        finally:
            with contextlib.suppress(Exception):
                self.core.logout(token)

    def witnessed(self, node: int) -> int:
        answer = self.signer.coordinator.clients[node].witnessed_head()
        return int(answer.head.tree_size) if answer.HasField("head") else -1


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("witness") / "cluster"
    audit_raw = AUDIT_KEY.public_key.public_bytes_raw()
    with process_cluster(root, 3, 2, unauthorized_digests=False, audit_key=audit_raw,
                         audit_max_head_age_s=MAX_HEAD_AGE_S) as (procs, co):
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        registry, people = enrol(RP, [("tina", ["trader"]), ("admin1", ["admin"]),
                                      ("admin2", ["admin"])], seed=b"audit-witness")
        cluster = load_cluster_config(root / "cluster.toml")
        assert cluster.audit_key == audit_raw
        db = root.parent / "oms.sqlite3"
        signer = CoordinatorSigner(co, key.key_id)
        core = OmsCore(OmsConfig(db, key.key_id, RP, cluster.admins, cluster.admin_quorum),
                       signer, FixedPrices({"ETH": "2000"}), AUDIT_KEY, time.time)
        signer.audit = core
        bundle = make_bundle(load_policy(POLICY), RP, registry)
        core.bootstrap_policy(signed_bundle_json(bundle, load_admin_keys(root)))
        public_key = root.parent / "audit.pub.pem"
        write_public_key(public_key, AUDIT_KEY.public_key)
        yield World(core, signer, people, root, db, public_key, procs)
        core.close()


def verify(world: World, db: Path, *extra: str) -> int:
    return main(["audit", "verify", "--db", str(db), "--public-key", str(world.public_key),
                 *extra])


def copy_db(world: World, name: str) -> Path:
    """A consistent copy of the OMS database, as the host that holds the file has it."""
    target = world.root.parent / name
    with contextlib.closing(sqlite3.connect(target)) as out:
        world.core.conn.backup(out)
    return target


def test_honest_signing_leaves_the_newest_head_with_every_signer(world: World) -> None:
    for _ in range(3):
        world.sign_one()
    newest = world.core.audit.latest_tree_head(world.core.conn)
    assert newest is not None
    held = {i: world.witnessed(i) for i in (1, 2, 3)}
    # Each request's signers were sent the head signed just before; a signer that took
    # part in the last request holds the newest head, none holds more.
    assert max(held.values()) == newest.tree_size
    assert sum(1 for size in held.values() if size > 0) >= 2
    for node, size in held.items():
        if size > 0:
            assert verify(world, world.db, "--witness", f"node:{node}",
                          "--cluster", str(world.root)) == EXIT_OK


def test_a_rewritten_log_with_its_heads_deleted_fails_against_the_witness(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.sign_one()
    node = max((1, 2, 3), key=world.witnessed)
    witnessed_size = world.witnessed(node)
    target = next(row.index for row in read_rows(world.core.conn)
                  if row.entry is not None and "amount" in row.entry.details
                  and row.index < witnessed_size)
    forged = copy_db(world, "rewritten.sqlite3")
    rewrite_entry(forged, target)
    capsys.readouterr()
    # Without a witness, the rewrite passes: the attack the issue measured.
    assert verify(world, forged) == EXIT_OK
    assert "no signed tree head yet" in capsys.readouterr().out
    # With the node's head, it fails and names why.
    assert verify(world, forged, "--witness", f"node:{node}",
                  "--cluster", str(world.root)) == EXIT_DEFECT
    err = capsys.readouterr().err
    assert f"tree head witnessed by node {node} (size {witnessed_size})" in err
    assert "rewritten with recomputed hashes" in err
    # The same with the head saved to a file (an auditor's copy of what the node holds).
    answer = world.signer.coordinator.clients[node].witnessed_head()
    saved = world.root.parent / "witnessed.json"
    saved.write_text(json.dumps(SignedTreeHead(
        TreeHead(answer.head.log_id, answer.head.tree_size, answer.head.root_hash,
                 answer.head.timestamp_ms), answer.head.signature).to_json_object()))
    assert verify(world, forged, "--witness", str(saved)) == EXIT_DEFECT
    assert "tree head witnessed in" in capsys.readouterr().err


def test_a_log_cut_short_with_its_heads_deleted_fails_against_the_witness(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.sign_one()
    node = max((1, 2, 3), key=world.witnessed)
    size = world.witnessed(node)
    cut = copy_db(world, "truncated.sqlite3")
    with contextlib.closing(sqlite3.connect(cut)) as conn:
        conn.execute("DROP TRIGGER audit_entries_no_delete")
        conn.execute("DROP TRIGGER audit_tree_heads_no_delete")
        conn.execute("DELETE FROM audit_entries WHERE idx >= ?", (size - 2,))
        conn.execute("DELETE FROM audit_tree_heads")
        conn.commit()
    assert verify(world, cut) == EXIT_OK
    capsys.readouterr()
    assert verify(world, cut, "--witness", f"node:{node}",
                  "--cluster", str(world.root)) == EXIT_DEFECT
    assert "truncated?" in capsys.readouterr().err


class HostileHeads:
    """The audit heads a hostile OMS host (holding the audit key) would send: ``head``
    instead of the real one, with proofs from the real log of ``size`` entries."""

    def __init__(self, real: AuditHeads, head: SignedTreeHead, size: int) -> None:
        self.real = real
        self.head = head
        self.size = size

    def newest_head(self) -> SignedTreeHead:
        return self.head

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return self.real.consistency_proof(old_size, min(new_size, self.size))


def refused(world: World, heads: AuditHeads | None, match: str) -> None:
    honest = world.signer.audit
    world.signer.audit = heads
    try:
        with pytest.raises(SigningRefused, match=match):
            world.sign_one()
    finally:
        world.signer.audit = honest


def test_nodes_refuse_an_older_inconsistent_foreign_or_missing_head(world: World) -> None:
    world.sign_one()
    world.sign_one()  # both signer pairs overlap: some node now holds a head of size > 1
    core = world.core
    newest = core.newest_head()
    first = core.audit.tree_heads(core.conn)[0]
    assert first.tree_size < min(s for s in map(world.witnessed, (1, 2, 3)) if s > 0)

    def now_ms() -> int:
        """Each hostile head is dated now: the nodes must refuse it for what it is, not
        for its age (max_head_age_seconds, tested below)."""
        return int(time.time() * 1000)

    older = AUDIT_KEY.sign(TreeHead(first.log_id, first.tree_size, first.root_hash, now_ms()))
    refused(world, HostileHeads(core, older, newest.tree_size), "older than the head of")
    grown = newest.tree_size + 5
    bogus = AUDIT_KEY.sign(TreeHead(newest.log_id, grown, b"\x42" * 32, now_ms()))
    refused(world, HostileHeads(core, bogus, newest.tree_size),
            "is not consistent with the head of")
    foreign = AuditSigner.from_seed(b"\x22" * 32).sign(
        TreeHead(newest.log_id, newest.tree_size, newest.root_hash, now_ms()))
    refused(world, HostileHeads(core, foreign, newest.tree_size),
            "does not verify under the audit public key")
    refused(world, None, "must carry the OMS's newest signed tree head")
    # None of it moved a node's head; the honest OMS still signs.
    assert max(map(world.witnessed, (1, 2, 3))) <= core.newest_head().tree_size
    world.sign_one()


def test_nodes_refuse_a_head_held_back_past_the_maximum_age(world: World) -> None:
    """The OMS keeps showing the signers the head they already hold (consistent, signed,
    nothing to refuse but its age) instead of newer ones: accepted while fresh, refused
    once older than max_head_age_seconds by the nodes' clocks."""
    world.sign_one()
    core = world.core
    held = core.newest_head()
    stuck = HostileHeads(core, held, held.tree_size)
    world.signer.audit = stuck
    try:
        world.sign_one()  # fresh: the nodes take it (and it stays their newest)
        time.sleep(max(0.0, held.timestamp_ms / 1000 + MAX_HEAD_AGE_S + 1 - time.time()))
        with pytest.raises(SigningRefused, match=rf"s old, more than the {MAX_HEAD_AGE_S} s"):
            world.sign_one()
        # The same from a head signed long ago with the audit key (a node with no head
        # would otherwise take it on first use).
        old = AUDIT_KEY.sign(TreeHead(held.log_id, held.tree_size, held.root_hash,
                                      held.timestamp_ms - 3_600_000))
        refused(world, HostileHeads(core, old, held.tree_size), "s old, more than")
    finally:
        world.signer.audit = core
    world.sign_one()  # a fresh head again: signing goes on


def test_a_new_witness_starts_from_a_pinned_head(world: World) -> None:
    """A node that has witnessed nothing (here: its state removed while stopped) would take
    the first head a sign request brings on trust; pinned, it starts from the head the
    auditors hold and serves it."""
    world.sign_one()
    core = world.core
    pinned = core.newest_head()
    node = min((1, 2, 3), key=world.witnessed)
    world.procs.stop(node)
    head_file = world.root / f"node{node}" / "data" / "audit_witness" / "head.json"
    head_file.unlink(missing_ok=True)
    cluster = load_cluster_config(world.root / "cluster.toml")
    assert cluster.audit_key is not None
    state = AuditWitnessState(head_file.parent.parent, cluster.audit_key,
                              cluster.audit_max_head_age_s)
    assert state.pin(pinned)
    world.procs.start(node)
    world.procs.wait_healthy(world.signer.coordinator, {node}, timeout=60.0)
    assert world.witnessed(node) == pinned.tree_size
    assert verify(world, world.db, "--witness", f"node:{node}",
                  "--cluster", str(world.root)) == EXIT_OK
    world.sign_one()


def test_a_witnessed_head_survives_a_node_restart(world: World) -> None:
    """The head is on disk (atomically replaced), not only in memory."""
    world.sign_one()  # every signer holds a head, whatever ran before
    node = max((1, 2, 3), key=world.witnessed)
    before = world.witnessed(node)
    world.procs.stop(node)
    world.procs.start(node)
    world.procs.wait_healthy(world.signer.coordinator, {node}, timeout=60.0)
    assert world.witnessed(node) == before > 0
    head_file = world.root / f"node{node}" / "data" / "audit_witness" / "head.json"
    head = SignedTreeHead.from_json_object(json.loads(head_file.read_text()))
    head.verify(AUDIT_KEY.public_key)
    assert head.tree_size == before
    world.sign_one()
