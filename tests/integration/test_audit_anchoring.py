"""``oms serve`` anchors its audit log on chain (DESIGN §6, issue 13 item 7), as a separate
process next to a real 2-of-3 cluster of ``mpcnode serve`` processes and a real anvil.

The cluster witnesses the OMS's audit log (``mpc-ceremony audit-key`` names the key
``oms init`` made, the nodes restarted). The OMS anchors every second from a dedicated
anchor account into an AuditAnchor it owns; a trader's transfer is signed and broadcast.
Then the attacker's move of issue 13 — whoever holds the database file rewrites an entry
with recomputed hashes and deletes ``audit_tree_heads`` (or cuts the log short): ``oms
audit verify`` alone still passes, ``--anchors`` (read from the chain, never from the
database) and ``--witness`` fail naming the anchor's block and transaction or the node's
head; the honest log passes both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from coordinator.ceremony_cli import main as ceremony_main
from ethereum.addresses import ethereum_address
from oms_core.app.audit_anchoring import ANCHORED
from oms_core.audit.audit_cli import EXIT_DEFECT, EXIT_OK, EXIT_UNUSABLE
from oms_core.audit.log import read_rows
from oms_core.chain.audit_anchor import Anchor, AnchorAccount, deploy_contract, read_anchors
from oms_core.cli.authenticator_file import load_authenticator, save_authenticator
from oms_core.cli.client_challenge import challenge_to_sign
from oms_core.cli.instance_setup import DEMO_RP
from oms_core.cli.oms_cli import main as oms_main
from oms_core.cli.oms_client import OmsClient
from oms_core.rpc import oms_pb2 as pb
from testing.audit_tampering import rewrite_entry
from testing.chain_support import ANVIL_CHAIN_ID, AnvilNode, free_port, running_anvil
from testing.integration_support import process_cluster
from testing.transfer_policy import SINK_ADDRESS, transfer_policy

REPO = Path(__file__).resolve().parents[2]  # this checkout's code runs in oms serve
TREASURY = SINK_ADDRESS
ANCHOR_KEY = b"\x3c" * 32
INTERVAL_S = 1
POLICY = transfer_policy("anchoring", max_single_usd=1000, max_daily_usd=10_000_000,
                         chain_id=ANVIL_CHAIN_ID)


@dataclass
class Instance:
    root: Path
    config: Path
    db: Path
    public_key: Path
    target: str
    anvil: AnvilNode
    contract: str
    deployed_at: int  # block of the contract's creation
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
            str(REPO), os.environ.get("PYTHONPATH")]))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; from oms_core.cli.oms_cli import main; "
                 "sys.exit(main(sys.argv[1:]))", "serve", "--config", str(self.config)],
                stdout=out, stderr=out, env=env)
        deadline = time.monotonic() + 90
        with OmsClient(self.target, ca_pem=None, timeout=2) as client:
            while not client.healthy():
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                assert time.monotonic() < deadline, self.log.read_text()[-3000:]
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def anchors(self) -> list[Anchor]:
        return read_anchors(self.anvil.endpoint(), self.contract, from_block=self.deployed_at)

    def verify(self, db: Path, *extra: str) -> int:
        return oms_main(["audit", "verify", "--db", str(db), "--public-key",
                         str(self.public_key), *extra])

    def with_anchors(self) -> list[str]:
        return ["--anchors", self.contract, "--rpc", self.anvil.url,
                "--from-block", str(self.deployed_at)]




def _anchor_account_files(anvil: AnvilNode, out: Path) -> tuple[str, int]:
    """The anchor account's keystore and passphrase, the account funded with gas, and its
    AuditAnchor deployed; returns (contract, deployment block)."""
    account = AnchorAccount.from_private_key(ANCHOR_KEY)
    keystore = Account.encrypt(ANCHOR_KEY, "anchor-passphrase", kdf="scrypt",
                               iterations=2**10)
    (out / "anchor.keystore.json").write_text(json.dumps(keystore))
    passphrase = out / "anchor.passphrase"
    passphrase.write_text("anchor-passphrase\n")
    passphrase.chmod(0o600)
    anvil.fund(account.address)
    return deploy_contract(anvil.endpoint(), account, chain_id=ANVIL_CHAIN_ID)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    root = tmp_path_factory.mktemp("anchoring")
    cluster_dir = root / "cluster"
    with process_cluster(cluster_dir, 3, 2, unauthorized_digests=False) as (procs, co), \
            running_anvil() as anvil:
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        address = ethereum_address(key.public_key)
        anvil.fund(address)
        (root / "policy.toml").write_text(POLICY)
        port = free_port()
        assert oms_main(["init", "--cluster", str(cluster_dir), "--key-id", key.key_id.hex(),
                         "--out", str(root / "oms"), "--no-tls", "--listen",
                         f"127.0.0.1:{port}", "--policy", str(root / "policy.toml"),
                         "--price", "ETH=2000", "--demo-person", "tina:trader",
                         "--demo-person", "admin1:admin", "--demo-person", "admin2:admin"]) == 0
        # The nodes witness this OMS's audit log from their next start.
        public_key = root / "oms" / "audit.pub.pem"
        assert ceremony_main(["audit-key", str(cluster_dir), "--oms-public-key",
                              str(public_key)]) == 0
        for i in (1, 2, 3):
            procs.stop(i)
            procs.start(i)
        procs.wait_healthy(co, {1, 2, 3}, timeout=60.0)
        contract, deployed_at = _anchor_account_files(anvil, root / "oms")
        config = root / "oms" / "oms.toml"
        with config.open("a") as f:
            f.write(f"""
[audit.anchor]
interval_seconds = {INTERVAL_S}
contract = "{contract}"
key_file = "anchor.keystore.json"
passphrase_file = "anchor.passphrase"
confirm_timeout_seconds = 30

[chain]
chain_id = {ANVIL_CHAIN_ID}
holding_address = "{address}"
confirmations = 1
confirm_timeout_seconds = 30
poll_seconds = 0.1

[chain.endpoints]
anvil-a = "{anvil.url}"
anvil-b = "{anvil.url}"
""")
        world = Instance(root, config, root / "oms" / "oms.sqlite3", public_key,
                         f"127.0.0.1:{port}", anvil, contract, deployed_at, root / "oms.log")
        try:
            yield world
        finally:
            world.stop()


def _assertion(instance: Instance, user: str, challenge: bytes) -> bytes:
    path = instance.root / "oms" / "people" / f"{user}.authenticator.json"
    authenticator = load_authenticator(path)
    assertion = authenticator.get_assertion(DEMO_RP.rp_id, DEMO_RP.origin, challenge,
                                            authenticator.credential_id)
    save_authenticator(path, authenticator)
    return assertion.to_json()


def transfer(instance: Instance, rid: str) -> None:
    with OmsClient(instance.target, ca_pem=None, timeout=120) as client:
        token = client.login_finish("tina", _assertion(
            instance, "tina", client.login_begin("tina"))).token
        client.submit(token, pb.SubmitRequest(client_request_id=rid, asset="ETH",
                                              amount="0.01", destination=TREASURY))
        view = client.get(token, rid)
        client.confirm(token, rid, _assertion(instance, "tina",
                                              challenge_to_sign(view, rid).challenge))
        deadline = time.monotonic() + 60
        while client.get(token, rid).state != "confirmed":
            assert time.monotonic() < deadline, client.get(token, rid).state
            time.sleep(0.2)


def audit_size(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0])


def to_anchor(db: Path) -> int:
    """The entries an anchor must cover: all but a trailing anchor record (the OMS does not
    anchor a log whose only news is its last anchor)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        last = conn.execute("SELECT MAX(idx) FROM audit_entries WHERE action != ?",
                            (ANCHORED,)).fetchone()[0]
    return 0 if last is None else int(last) + 1


def wait_anchored(instance: Instance, size: int, timeout: float = 60.0) -> list[Anchor]:
    """Until an anchor covers at least ``size`` entries."""
    deadline = time.monotonic() + timeout
    while True:
        anchors = instance.anchors()
        if anchors and anchors[-1].tree_size >= size:
            return anchors
        assert time.monotonic() < deadline, (anchors, instance.log.read_text()[-3000:])
        time.sleep(0.2)


def witnessing_node(instance: Instance) -> int:
    """A node that holds a witnessed head (two of three signed the transfer)."""
    for node in (1, 2, 3):
        with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
            code = instance.verify(instance.db, "--witness", f"node:{node}", "--cluster",
                                   str(instance.root / "cluster"))
        if code == EXIT_OK:
            return node
    raise AssertionError("no node witnessed a head")


def copy_db(instance: Instance, name: str) -> Path:
    target = instance.root / name
    with contextlib.closing(sqlite3.connect(instance.db)) as src, \
            contextlib.closing(sqlite3.connect(target)) as out:
        src.backup(out)
    return target


def test_anchors_appear_at_the_interval_and_are_recorded_in_the_log(
        instance: Instance) -> None:
    instance.start()
    started = to_anchor(instance.db)
    first = wait_anchored(instance, started, timeout=30)
    transfer(instance, "anchor-1")
    grown = to_anchor(instance.db)
    assert grown > started
    anchors = wait_anchored(instance, grown, timeout=30)
    assert len(anchors) > len(first)
    # An idle OMS anchors nothing new: only the last anchor's own record follows it.
    deadline = time.monotonic() + 30
    while audit_size(instance.db) != instance.anchors()[-1].tree_size + 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    idle = instance.anchors()
    time.sleep(4 * INTERVAL_S)
    assert instance.anchors() == idle and audit_size(instance.db) == idle[-1].tree_size + 1
    instance.stop()
    with contextlib.closing(sqlite3.connect(instance.db)) as conn:
        recorded = {subject: json.loads(details) for subject, details in conn.execute(
            "SELECT subject, details FROM audit_entries WHERE action = ?", (ANCHORED,))}
    on_chain = {f"0x{a.tx_hash.hex()}": a for a in idle}
    assert set(recorded) == set(on_chain)
    for tx, details in recorded.items():
        assert (details["tree_size"], details["root_hash"], details["block_number"],
                details["contract"]) == (on_chain[tx].tree_size, on_chain[tx].root_hash.hex(),
                                         on_chain[tx].block_number, instance.contract)


def test_an_honest_log_passes_against_the_anchors_and_the_witness(
        instance: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    node = witnessing_node(instance)
    capsys.readouterr()
    assert instance.verify(instance.db, *instance.with_anchors(), "--witness", f"node:{node}",
                           "--cluster", str(instance.root / "cluster")) == EXIT_OK
    out = capsys.readouterr().out
    anchors = instance.anchors()
    owner = AnchorAccount.from_private_key(ANCHOR_KEY).address
    assert (f"{len(anchors)} anchors on chain (AuditAnchor {instance.contract} owned by "
            f"{owner}) matched") in out
    assert anchors[-1].label in out and f"tree head witnessed by node {node}" in out


def test_a_rewritten_log_with_its_heads_deleted_fails_against_the_anchors(
        instance: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    anchors = instance.anchors()
    node = witnessing_node(instance)
    with contextlib.closing(sqlite3.connect(instance.db)) as conn:
        target = next(row.index for row in read_rows(conn)
                      if row.entry is not None and "amount" in row.entry.details)
    assert target < anchors[-1].tree_size
    forged = copy_db(instance, "rewritten.sqlite3")
    rewrite_entry(forged, target)
    capsys.readouterr()
    assert instance.verify(forged) == EXIT_OK  # the attack, unseen without outside heads
    assert "no signed tree head yet" in capsys.readouterr().out
    assert instance.verify(forged, *instance.with_anchors()) == EXIT_DEFECT
    err = capsys.readouterr().err
    broken = next(a for a in anchors if a.tree_size > target)
    assert f"the entries do not give the root of {broken.label}" in err
    assert f"block {broken.block_number} tx 0x{broken.tx_hash.hex()}" in err
    assert instance.verify(forged, "--witness", f"node:{node}", "--cluster",
                           str(instance.root / "cluster")) == EXIT_DEFECT
    assert f"tree head witnessed by node {node}" in capsys.readouterr().err


def test_a_log_cut_short_or_its_heads_deleted_fails_against_the_anchors(
        instance: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    anchors = instance.anchors()
    newest = anchors[-1]
    cut = copy_db(instance, "truncated.sqlite3")
    with contextlib.closing(sqlite3.connect(cut)) as conn:
        conn.execute("DROP TRIGGER audit_entries_no_delete")
        conn.execute("DROP TRIGGER audit_tree_heads_no_delete")
        conn.execute("DELETE FROM audit_entries WHERE idx >= ?", (newest.tree_size - 2,))
        conn.execute("DELETE FROM audit_tree_heads")
        conn.commit()
    capsys.readouterr()
    assert instance.verify(cut) == EXIT_OK
    assert instance.verify(cut, *instance.with_anchors()) == EXIT_DEFECT
    err = capsys.readouterr().err
    assert "truncated?" in err and newest.label in err
    headless = copy_db(instance, "headless.sqlite3")
    with contextlib.closing(sqlite3.connect(headless)) as conn:
        conn.execute("DROP TRIGGER audit_tree_heads_no_delete")
        conn.execute("DELETE FROM audit_tree_heads")
        conn.commit()
    assert instance.verify(headless, *instance.with_anchors()) == EXIT_DEFECT
    assert "(tree heads deleted?)" in capsys.readouterr().err


def test_verify_anchors_refuses_what_is_not_the_anchor_contract(
        instance: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert instance.verify(instance.db, "--anchors", TREASURY, "--rpc",
                           instance.anvil.url) == EXIT_UNUSABLE
    assert "is not an AuditAnchor (no code)" in capsys.readouterr().err
    assert instance.verify(instance.db, "--anchors", instance.contract) == EXIT_UNUSABLE
    assert "--anchors needs --rpc URL" in capsys.readouterr().err
    latest = instance.anvil.endpoint().block(None).number
    assert instance.verify(instance.db, *instance.with_anchors()[:4], "--from-block",
                           str(latest + 1)) == EXIT_UNUSABLE
    assert "no anchor on chain from block" in capsys.readouterr().err
