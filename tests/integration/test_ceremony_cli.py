"""``mpc-ceremony`` end to end: init, up, keygen (transcript), verify, a forged transcript
REJECTED, refresh, verify again, down — real node processes over mutual-TLS gRPC."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bip_utils import EthAddrEncoder
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec as ec_key

from coordinator.ceremony_cli import main
from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_cluster_config, load_coordinator_config
from mpcnode.ceremony.node_config import load_identity_keys, load_node_config
from mpcnode.daemon.node_cli import main as node_main
from mpcnode.state.audit_witness_state import AuditWitnessState
from mpcnode.transport import envelope
from oms_core.audit.signing_key import AuditSigner, write_public_key
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import free_port_base, make_cluster
from zero_trust.audit_tree.tree_head import TreeHead

NODES, THRESHOLD = 3, 2
HEX_FLIP = dict(zip("0123456789abcdef", "1032547698badcfe", strict=True))


def run(*argv: str | Path | int) -> tuple[int, str, str]:
    """``mpc-ceremony argv…`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def pids(root: Path) -> dict[int, int]:
    found = {}
    for i in range(1, NODES + 1):
        f = root / f"node{i}" / "node.pid"
        if f.exists():
            found[i] = json.loads(f.read_text())["pid"]
    return found


def running(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, exited (reaped now)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- init


def test_init_writes_a_complete_cluster(tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    base = free_port_base(NODES)
    code, _, err = run("init", "--nodes", NODES, "--threshold", THRESHOLD, "--out", out,
                       "--base-port", base, "--metrics-base-port", base + 1000)
    assert code == 0, err
    assert f"{THRESHOLD}-of-{NODES}" in err and "take it offline" in err

    private = [out / "ca" / "ca.key", out / "coordinator" / "coordinator.key"]
    for i in range(1, NODES + 1):
        d = out / f"node{i}"
        private += [d / "tls.key", d / "identity.pem", d / "passphrase"]
        assert (d / "tls.pem").is_file()
        cfg = load_node_config(d / "node.toml")  # validates paths, modes and the cert chain
        assert (cfg.node_id, cfg.listen) == (i, f"127.0.0.1:{base + i}")
        assert "[testing]" not in (d / "node.toml").read_text()  # no test switch
        load_identity_keys(cfg, load_cluster_config(out / "cluster.toml"))
    for p in private:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    cluster = load_cluster_config(out / "cluster.toml")
    assert (cluster.threshold, sorted(cluster.nodes)) == (THRESHOLD, [1, 2, 3])
    load_coordinator_config(out)

    # A second init never overwrites a cluster.
    before = (out / "ca" / "ca.key").read_bytes()
    code, _, err = run("init", "--nodes", NODES, "--threshold", THRESHOLD, "--out", out)
    assert code != 0 and "refusing to overwrite" in err
    assert (out / "ca" / "ca.key").read_bytes() == before


def test_audit_key_names_the_oms_audit_key_in_cluster_toml(tmp_path: Path) -> None:
    """``audit-key``: the key ``oms init`` wrote goes into cluster.toml; a second, other
    key is refused unless replaced on purpose; what is not an Ed25519 PEM is one line."""
    out = tmp_path / "c"
    base = free_port_base(NODES)
    assert run("init", "--nodes", NODES, "--threshold", THRESHOLD, "--out", out,
               "--base-port", base, "--metrics-base-port", base + 1000)[0] == 0
    first, second = (AuditSigner.from_seed(bytes([i]) * 32) for i in (1, 2))
    pem = tmp_path / "audit.pub.pem"
    write_public_key(pem, first.public_key)
    code, stdout, err = run("audit-key", out, "--oms-public-key", pem)
    assert code == 0, err
    raw = first.public_key.public_bytes_raw()
    assert json.loads(stdout)["oms_public_key"] == raw.hex() and "restart the nodes" in err
    assert load_cluster_config(out / "cluster.toml").audit_key == raw
    assert load_cluster_config(out / "cluster.toml").audit_max_head_age_s == 600
    code, _, err = run("audit-key", out, "--oms-public-key", pem, "--max-head-age-seconds", 5)
    assert code == 1 and "max_head_age_seconds" in err and err.count("\n") == 1
    assert run("audit-key", out, "--oms-public-key", pem, "--max-head-age-seconds", 120)[0] == 0
    assert load_cluster_config(out / "cluster.toml").audit_max_head_age_s == 120
    assert run("audit-key", out, "--oms-public-key", pem)[0] == 0  # the same key again
    pem = tmp_path / "other.pub.pem"
    write_public_key(pem, second.public_key)
    code, _, err = run("audit-key", out, "--oms-public-key", pem)
    assert code == 1 and "already names another OMS audit key" in err and "--replace" in err
    assert load_cluster_config(out / "cluster.toml").audit_key == raw
    assert run("audit-key", out, "--oms-public-key", pem, "--replace")[0] == 0
    assert load_cluster_config(out / "cluster.toml").audit_key == \
        second.public_key.public_bytes_raw()
    (tmp_path / "tls.pem").write_bytes((out / "ca" / "ca.pem").read_bytes())  # an EC cert
    code, _, err = run("audit-key", out, "--oms-public-key", tmp_path / "tls.pem")
    assert code == 1 and "not a PEM public key" in err and err.count("\n") == 1
    ec = ec_key.generate_private_key(ec_key.SECP256R1()).public_key()
    (tmp_path / "ec.pem").write_bytes(ec.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, _, err = run("audit-key", out, "--oms-public-key", tmp_path / "ec.pem")
    assert code == 1 and "must be Ed25519, not" in err and err.count("\n") == 1
    code, _, err = run("audit-key", out, "--oms-public-key", tmp_path / "missing.pem")
    assert code == 1 and "missing.pem: (file): cannot read" in err
    # A node of the cluster pins its first witnessed head (mpcnode witness-pin).
    head = tmp_path / "head.json"
    signed = second.sign(TreeHead("oms", 3, b"\x33" * 32, 1_700_000_000_000))
    head.write_text(json.dumps(signed.to_json_object()))
    pin = ["witness-pin", "--config", str(out / "node1" / "node.toml"), str(head)]
    err_out = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert node_main(pin) == 0
    assert "node 1: pinned the audit tree head of log 'oms', 3 entries" in said.getvalue()
    cluster = load_cluster_config(out / "cluster.toml")
    assert cluster.audit_key is not None
    state = AuditWitnessState(out / "node1" / "data", cluster.audit_key, 600)
    assert state.head == signed
    head.write_text(json.dumps(first.sign(signed.head).to_json_object()))
    with contextlib.redirect_stderr(err_out):
        assert node_main(pin) == 2
    assert "pinned head refused" in err_out.getvalue() and err_out.getvalue().count("\n") == 1


def test_init_rejects_a_bad_threshold(tmp_path: Path) -> None:
    code, _, err = run("init", "--nodes", 3, "--threshold", 4, "--out", tmp_path / "bad")
    assert code != 0 and "--threshold" in err
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- ceremony


@dataclass
class Ceremony:
    root: Path
    keygen: dict[str, Any]  # what `keygen` printed

    @property
    def transcript(self) -> Path:
        return self.root / "transcripts" / "hot.json"

    def coordinator(self) -> Coordinator:
        return Coordinator(load_coordinator_config(self.root), timeout=60.0)


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ceremony]:
    root = tmp_path_factory.mktemp("ceremony") / "cluster"
    make_cluster(root, NODES, THRESHOLD)  # init + TEST ONLY prime pools
    # node1/node.pid names an unrelated process (the node's PID, reused after a reboot):
    # `up` must start node 1 anyway and leave that process alone.
    unrelated = subprocess.Popen(["sleep", "300"])
    (root / "node1" / "node.pid").write_text(f"{unrelated.pid}\n")
    try:
        code, _, err = run("up", root, "--test-only-nodes")
        assert code == 0, err
        assert "all nodes healthy" in err
        assert f"node 1: pid {unrelated.pid} is not this node's process ('sleep 300')" in err
        assert "node 1: started" in err and unrelated.poll() is None
        unrelated.kill()
        unrelated.wait()
        code, out, err = run("keygen", root, "--key-id", "hot")
        assert code == 0, err
        yield Ceremony(root, json.loads(out))
    finally:
        if unrelated.poll() is None:
            unrelated.kill()
            unrelated.wait()
        run("down", root)
        for pid in pids(root).values():  # `down` failed: never leave a node behind
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_keygen_writes_the_transcript_and_reports_the_key(ceremony: Ceremony) -> None:
    report = ceremony.keygen
    assert Path(report["transcript"]) == ceremony.transcript and ceremony.transcript.is_file()
    assert (report["key"], report["threshold"], report["parties"]) == ("hot", THRESHOLD,
                                                                        [1, 2, 3])
    keys = json.loads((ceremony.root / "keys.json").read_text())
    assert keys == {"hot": report["key_id"]}
    with ceremony.coordinator() as c:
        info = c.key_info(bytes.fromhex(report["key_id"]))
    assert info.public_key.hex() == report["public_key"]
    assert info.has_aux_info
    # The address, by an independent implementation (keccak of the uncompressed key,
    # EIP-55 checksum).
    assert report["ethereum_address"] == EthAddrEncoder.EncodeKey(
        bytes.fromhex(report["public_key"]))
    # No secret direct message (a VSS share) is in the transcript.
    doc = json.loads(ceremony.transcript.read_text())
    rounds = {m["round"] for s in doc["sessions"] for m in s["messages"] if m["recipient"]}
    assert rounds == {"aux/3"}


def test_a_second_key_with_the_same_label_is_refused(ceremony: Ceremony) -> None:
    code, _, err = run("keygen", ceremony.root, "--key-id", "hot")
    assert code != 0 and "already exists" in err


def test_verify_accepts_the_transcript(ceremony: Ceremony) -> None:
    code, out, err = run("verify", ceremony.transcript)
    assert code == 0, err
    assert ": OK" in out
    assert ceremony.keygen["ethereum_address"] in out
    assert ceremony.keygen["public_key"] in out
    cluster = load_cluster_config(ceremony.root / "cluster.toml")
    for i, node in cluster.nodes.items():  # what an auditor compares with the operators'
        assert f"node {i}: {node.identity.fingerprint}" in out


def test_verify_against_the_cluster_file(ceremony: Ceremony, tmp_path: Path) -> None:
    cluster_file = ceremony.root / "cluster.toml"
    code, out, err = run("verify", ceremony.transcript, "--cluster", cluster_file)
    assert code == 0, err
    assert f"matches {cluster_file}" in out
    # The same transcript against a cluster.toml whose node 2 has another identity.
    other = tmp_path / "other"
    base = free_port_base(NODES)
    code, _, err = run("init", "--nodes", NODES, "--threshold", THRESHOLD, "--out", other,
                       "--base-port", base, "--metrics-base-port", base + 1000)
    assert code == 0, err
    code, out, err = run("verify", ceremony.transcript, "--cluster", other / "cluster.toml")
    assert code != 0 and ": OK" not in out
    assert "REJECTED" in err and "node 1's identity key in the transcript" in err


def flip_one_byte(body: bytes, anchor: str) -> bytes:
    """``body`` with the last hex digit of the value starting at ``anchor`` changed."""
    text = body.decode()
    start = text.index(anchor) + len(anchor)
    end = text.index('"', start) - 1
    return (text[:end] + HEX_FLIP[text[end]] + text[end + 1:]).encode()


def forged(ceremony: Ceremony, tmp_path: Path, round_name: str, sender: int, anchor: str,
           *, resign: bool) -> Path:
    """A copy of the transcript with one byte of one proof flipped; ``resign``: the
    message signed again with its sender's identity key (a forger holding that key)."""
    doc = json.loads(ceremony.transcript.read_text())
    [msg] = [m for s in doc["sessions"] for m in s["messages"]
             if (m["round"], m["sender"], m["recipient"]) == (round_name, sender, 0)]
    body = flip_one_byte(bytes.fromhex(msg["body"]), anchor)
    assert body != bytes.fromhex(msg["body"])
    msg["body"] = body.hex()
    if resign:
        cfg, _ = load_test_node_config(ceremony.root / f"node{sender}" / "node.toml")
        keys = load_identity_keys(cfg)
        env = envelope.seal_broadcast(keys, bytes.fromhex(msg["session_id"]), round_name, body)
        msg["signature"] = env.signature.hex()
    out = tmp_path / "forged.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize(("round_name", "anchor", "resign", "why"), [
    ("keygen/3", '"z":"0x', False, "signature"),  # Π^sch response, as it stands
    ("keygen/3", '"z":"0x', True, "Π^sch"),  # … validly re-signed: the proof itself fails
    ("aux/3", '"zs":["0x', True, "Π^mod"),  # a Paillier-Blum modulus proof response
])
def test_verify_rejects_a_flipped_proof_byte(ceremony: Ceremony, tmp_path: Path,
                                             round_name: str, anchor: str, resign: bool,
                                             why: str) -> None:
    path = forged(ceremony, tmp_path, round_name, 2, anchor, resign=resign)
    code, out, err = run("verify", path)
    assert code != 0
    assert "REJECTED" in err and ": OK" not in out
    assert why in err
    assert re.search(r"party 2\b", err), err


def test_refresh_keeps_the_key_and_the_transcript_verifies(ceremony: Ceremony) -> None:
    code, out, err = run("refresh", ceremony.root, "--key-id", "hot")
    assert code == 0, err
    report = json.loads(out)
    for field in ("key_id", "public_key", "ethereum_address", "threshold", "parties"):
        assert report[field] == ceremony.keygen[field]
    doc = json.loads(ceremony.transcript.read_text())
    assert [s["protocol"] for s in doc["sessions"]] == ["keygen", "aux_info", "refresh",
                                                         "aux_info"]
    with ceremony.coordinator() as c:
        assert c.key_info(bytes.fromhex(report["key_id"])).epoch == 1

    code, out, err = run("verify", ceremony.transcript)
    assert code == 0, err
    assert ceremony.keygen["ethereum_address"] in out
    assert "sessions: 4" in out


def test_refresh_of_an_unknown_label_fails(ceremony: Ceremony) -> None:
    code, _, err = run("refresh", ceremony.root, "--key-id", "cold")
    assert code != 0 and "no key labelled 'cold'" in err


def test_down_stops_every_node(ceremony: Ceremony) -> None:
    started = pids(ceremony.root)
    assert sorted(started) == [1, 2, 3] and all(running(p) for p in started.values())
    code, _, err = run("down", ceremony.root)
    assert code == 0, err
    assert not any(running(p) for p in started.values())
    assert sorted(line.split(" (")[0] for line in err.splitlines()) == [
        f"node {i}: stopped" for i in range(1, NODES + 1)]
    assert pids(ceremony.root) == {}
    with ceremony.coordinator() as c:
        assert c.healthy() == []
    for i in range(1, NODES + 1):
        log = (ceremony.root / f"node{i}" / "node.log").read_text()
        assert '"event": "stopped"' in log  # SIGTERM, not SIGKILL
