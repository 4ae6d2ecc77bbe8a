"""``oms demo`` end to end (issue 5 §7): a 3-of-5 cluster, the key ceremony, the embedded
chain and the article's DeFi scenario. The full run is slow-marked: the nodes generate real
safe primes (about a minute on a 2-core machine); run with ``pytest -m slow``. A demo that
fails (a phase raising, SIGTERM) is tested on real node processes before the slow step:
it leaves no process behind, and it does not need its default ports."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
import rlp
from eth_account import Account
from eth_hash.auto import keccak

from coordinator import node_process
from ethereum import erc20
from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.oms_config import load_settings
from oms_core.cli.client_challenge import ChallengeCheckError
from oms_core.cli.oms_client import OmsClient
from oms_core.demo import oms_demo as demo
from oms_core.rpc import oms_pb2 as pb
from testing.integration_support import processes_naming
from testing.oms_rpc_support import RP, TREASURY, UNKNOWN, running_world

TYPE_EIP1559 = 2


def fields_of(raw: bytes) -> list[bytes]:
    """The RLP fields of a signed EIP-1559 transaction: chain id, nonce, tip, max fee, gas,
    to, value, data, access list, y-parity, r, s."""
    assert raw[0] == TYPE_EIP1559
    decoded = rlp.decode(raw[1:])
    assert isinstance(decoded, list) and len(decoded) == 12
    return decoded


def as_int(field: bytes) -> int:
    return int.from_bytes(field, "big")


class InjectedError(Exception):
    pass


def fail_after_nodes_start(root: Path, pids: list[int]) -> Callable[[str], None]:
    """A progress callback that fails the demo at the first line after the nodes are up
    (inside the ceremony phase), noting the nodes' PIDs first."""
    seen: list[str] = []

    def progress(line: str) -> None:
        seen.append(line)
        if len(seen) > 1 and seen[0].startswith("1/"):
            for f in sorted(root.glob("node*/node.pid")):
                rec = node_process.read(f, f.parent / "node.toml")
                assert rec is not None
                pids.append(rec.pid)
            raise InjectedError("injected failure")

    return progress


class LyingServer(OmsClient):
    """An OMS host that shows each request with another payee than the one its
    transaction pays, and counts the assertions it receives."""

    assertions = 0

    def get(self, token: str, request_id: str) -> pb.RequestView:
        view = super().get(token, request_id)
        view.destination = UNKNOWN
        return view

    def confirm(self, token: str, request_id: str, assertion: bytes) -> pb.RequestView:
        self.assertions += 1
        return super().confirm(token, request_id, assertion)


def test_the_demo_people_sign_only_what_their_client_checked(tmp_path: Path) -> None:
    """The demo's users go through the CLI's challenge check: a server that misdescribes
    the request gets no assertion at all; the same request confirms over an honest one."""
    with running_world(tmp_path) as world:
        lying = LyingServer(world.target, ca_pem=None)
        with lying:
            scene = demo.Scene(lying, world.people, rp=RP)
            rid = scene.submit("tina", TREASURY, b"").request_id
            with pytest.raises(ChallengeCheckError, match="the transaction pays elsewhere"):
                scene.assert_request("tina", rid, "confirm")
            assert lying.assertions == 0
        with OmsClient(world.target, ca_pem=None) as honest:
            view = demo.Scene(honest, world.people, rp=RP).assert_request(
                "tina", rid, "confirm")
        assert view.state == "signed" and view.signed_transaction


@pytest.fixture
def default_port_taken() -> Iterator[int]:
    """The demo's default first node port, held by another listener (or already taken)."""
    port = demo.DEFAULT_BASE_PORT + 1
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            pass  # someone else holds it: as good
        yield port


def test_a_failed_demo_stops_every_node_it_started(tmp_path: Path,
                                                   default_port_taken: int) -> None:
    root, pids = tmp_path / "cluster", list[int]()
    try:
        with pytest.raises(InjectedError):
            demo.run(root, progress=fail_after_nodes_start(root, pids))
    finally:
        leftovers = processes_naming(root)
        for pid, _ in leftovers:  # the demo failed to: never leave a node behind
            os.kill(pid, signal.SIGKILL)
    assert leftovers == []
    assert len(pids) == demo.NODES
    assert all(node_process.start_ticks(p) is None for p in pids)
    assert list(root.glob("node*/node.pid")) == []
    ports = {int(e.address.rsplit(":", 1)[1])
             for e in load_cluster_config(root / "cluster.toml").nodes.values()}
    assert default_port_taken not in ports and len(ports) == demo.NODES


def test_sigterm_stops_the_demo_and_everything_it_started(tmp_path: Path) -> None:
    root, log = tmp_path / "cluster", tmp_path / "demo.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "oms_core.cli.oms_cli", "demo",
                                 "--json", "--dir", str(root)],
                                stdout=subprocess.PIPE, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while "all nodes healthy" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert len([p for p, _ in processes_naming(root) if p != proc.pid]) == demo.NODES
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        leftovers = processes_naming(root)
        for pid, _ in leftovers:  # the demo failed to: never leave a node behind
            os.kill(pid, signal.SIGKILL)
    assert leftovers == []
    said = log.read_text()
    assert proc.returncode == 1 and out == b"", said
    assert "demo failed: DemoInterruptedError: SIGTERM; everything it started is stopped" \
        in said
    assert sorted(line.split(" (")[0] for line in said.splitlines()
                  if line.startswith("node ") and ": stopped (" in line) == [
        f"node {i}: stopped" for i in range(1, demo.NODES + 1)]


def fail_once_the_oms_serves() -> Callable[[str], None]:
    """A progress callback that fails the demo as the phase after the OMS's begins: the
    daemon is serving, the people are logged in."""

    def progress(line: str) -> None:
        if line.startswith("4/"):
            raise InjectedError("injected failure")

    return progress


def oms_listening(config: Path) -> bool:
    host, port = load_settings(config).listen.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.slow
def test_demo_plays_the_defi_scenario_and_every_transaction_recovers(tmp_path: Path) -> None:
    # A run that fails while the OMS daemon serves, first: it stops the daemon (its port
    # closed, its thread gone) and every node, and the rerun must not mind it.
    failed = tmp_path / "failed"
    with pytest.raises(InjectedError):
        demo.run(failed, progress=fail_once_the_oms_serves())
    assert (failed / "oms" / "oms.toml").is_file() and not oms_listening(
        failed / "oms" / "oms.toml")
    assert not [t for t in threading.enumerate()
                if t.name in ("oms-serve", "oms-recovery", "oms-anchoring")]
    assert processes_naming(failed) == []
    said: list[str] = []
    result = json.loads(json.dumps(demo.run(tmp_path / "cluster", progress=said.append)))

    address = result["threshold_address"]
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", address) and address != address.lower()
    assert re.fullmatch(r"0x[0-9a-f]{64}", result["audit_root"])
    assert result["audit_entries"] > 0
    # The nodes witnessed the log and the OMS anchored it; the verify step checked both.
    assert result["audit_witnessed_heads"] and all(
        0 < size <= result["audit_entries"] for size in result["audit_witnessed_heads"].values())
    # The daemon's anchoring thread anchored as the log grew, the last anchor over all of
    # it but that anchor's own record.
    anchors = result["audit_anchors"]
    sizes = [a["tree_size"] for a in anchors]
    assert len(sizes) >= 2 and sizes == sorted(set(sizes))
    assert sizes[-1] >= result["audit_entries"] - 2
    assert re.fullmatch(r"0x[0-9a-f]{40}", result["audit_anchor_contract"])
    assert (result["threshold"], result["nodes"]) == (3, 5)

    transactions = result["transactions"]
    assert len(transactions) == 11  # the allowance, then the deposit split in ten parts
    nonces, deposited = [], 0
    for tx in transactions:
        raw = bytes.fromhex(tx["raw"][2:])
        assert tx["state"] == "confirmed"
        assert tx["hash"] == "0x" + bytes(keccak(raw)).hex()
        assert Account.recover_transaction(raw) == address
        fields = fields_of(raw)
        nonces.append(as_int(fields[1]))
        deposited += as_int(fields[7][36:68]) if tx is not transactions[0] else 0
    assert nonces == list(range(11))  # one nonce each, in order, none skipped

    allowance = fields_of(bytes.fromhex(transactions[0]["raw"][2:]))[7]
    call = erc20.decode(allowance)
    assert call is not None and call.selector == erc20.APPROVE
    assert call.amount == deposited == demo.DEPOSIT_USDC * 10**6

    story = "\n".join(said)
    assert ": pending_approval; the risk officer approves with WebAuthn" in story
    assert re.search(r"blocked: depositSingle: slippage \d+\.\d % exceeds the maximum "
                     r"1\.0 %; split into 10 parts", story), story
    assert "8/8 audit" in story
    assert list(result["phases"]) == [p.name for p in demo.PHASES]

    # The OMS was the daemon of an oms.toml, over TLS, and every request went through it:
    # its database holds each transaction the demo reports, and it no longer serves.
    config = Path(result["oms_config"])
    settings = load_settings(config)
    assert settings.tls is not None and settings.anchor is not None
    assert settings.chain is not None and len(settings.chain.endpoints) == 2
    assert f"oms serve ({config}) on {settings.listen} over TLS" in story
    with closing(sqlite3.connect(f"{Path(result['oms_db']).as_uri()}?mode=ro",
                                 uri=True)) as conn:
        stored = dict(conn.execute("SELECT request_id, state FROM requests").fetchall())
    assert {t["request_id"]: "confirmed" for t in transactions}.items() <= stored.items()
    assert not oms_listening(config)
    assert all(f"   [{p.name}: " in story for p in demo.PHASES)
