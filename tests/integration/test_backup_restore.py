"""Backup and recovery with real node processes (issue 14, DESIGN §5): node 2's host is
destroyed, its share is restored from a backup on a new host directory with new TLS and
identity keys, the admin quorum signs the identity change, the cluster signs with node 2
in the signer set, and the key is refreshed, its transcript recording the signed change.
A backup taken before a refresh is refused, naming both epochs."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from coordinator import node_process
from coordinator.ceremony_cli import main
from coordinator.coordinator import Coordinator
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony import share_backup as sb
from mpcnode.ceremony.cluster_file import load_cluster_config, load_coordinator_config
from mpcnode.ceremony.node_config import load_node_config, load_node_host
from mpcnode.ceremony.recovery_key import load_recovery_public
from mpcnode.state.node_store import SealedKeyFiles
from mpcnode.transport.system_random import SystemRandom
from test_only.node_switches import NodeSwitches, dump_test_node_config
from testing.cluster_harness import make_cluster, node_command
from testing.integration_support import openssl_verifies

NODES, THRESHOLD = 3, 2
PASSPHRASE = b"correct horse battery staple"


def run(*argv: str | Path | int) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def pid_of(root: Path, i: int) -> int | None:
    node = root / f"node{i}"
    rec = node_process.read(node / "node.pid", node / "node.toml")
    return None if rec is None else rec.pid


def kill_node(root: Path, i: int) -> None:
    pid = pid_of(root, i)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Path]:
    """A 2-of-3 cluster of real node processes (``mpc-ceremony up``) with a key "hot"."""
    root = tmp_path / "cluster"
    make_cluster(root, NODES, THRESHOLD)
    try:
        code, _, err = run("up", root, "--test-only-nodes")
        assert code == 0, err
        code, _, err = run("keygen", root, "--key-id", "hot")
        assert code == 0, err
        yield root
    finally:
        run("down", root)
        for i in range(1, NODES + 1):
            kill_node(root, i)


def recovery_keys(tmp_path: Path, n: int) -> list[tuple[Path, Path, Path]]:
    """``n`` recovery keys: (private, public, passphrase file)."""
    made = []
    for k in range(1, n + 1):
        pf = tmp_path / f"recovery{k}.passphrase"
        pf.write_bytes(PASSPHRASE + str(k).encode())
        pf.chmod(0o600)
        code, out, err = run("recovery-key", "new", "--out", tmp_path / f"recovery{k}",
                             "--passphrase-file", pf)
        assert code == 0, err
        assert PASSPHRASE.decode() not in out + err
        private = tmp_path / f"recovery{k}.key"
        assert json.loads(out)["private"] == str(private)
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
        made.append((private, tmp_path / f"recovery{k}.pub", pf))
    return made


def take_backup(root: Path, out: Path, recipients: list[Path], quorum: int = 1,
                *extra: str | Path) -> dict[str, object]:
    code, stdout, err = run("backup", root, "--node", 2, "--to",
                            ",".join(str(p) for p in recipients), "--quorum", quorum,
                            "--out", out, *(extra or ("--key-id", "hot")))
    assert code == 0, err
    report: dict[str, object] = json.loads(stdout)
    return report


def share_of(root: Path, i: int) -> int:
    """TEST ONLY: node i's share x_i, read with its own passphrase, to prove that no
    output of the backup path contains it."""
    cfg = load_node_host(root / f"node{i}" / "node.toml")
    key_id = bytes.fromhex(json.loads((root / "keys.json").read_text())["hot"])
    return SealedKeyFiles(cfg.data_dir, cfg.open_seal()).key_share(key_id).x


def test_recovery_drill_restores_node_2_on_a_new_host_and_it_signs(
        cluster: Path, tmp_path: Path) -> None:
    root = cluster
    keys = recovery_keys(tmp_path, 3)
    backup = tmp_path / "node2.backup"
    report = take_backup(root, backup, [k[1] for k in keys], quorum=2)
    assert (report["node"], report["epoch"], report["quorum"]) == (2, 0, 2)
    x2 = format(share_of(root, 2), "x")
    assert x2 not in backup.read_text() and x2 not in json.dumps(report)
    code, out, err = run("verify-backup", backup, "--dir", root)
    assert code == 0, err
    assert "nothing decrypted" in out

    # Node 2's host is lost: its process and its whole directory.
    kill_node(root, 2)
    shutil.rmtree(root / "node2")
    new_host = tmp_path / "newhost2"

    # One recovery key of a 2-of-3 recovery quorum opens nothing.
    code, _, err = run("restore", root, "--backup", backup, "--recovery-key", keys[0][0],
                       "--recovery-passphrase-file", keys[0][2], "--out", new_host)
    assert code != 0 and "open 1 of the 2 parts" in err
    assert not new_host.exists()
    # A wrong passphrase opens no recovery key.
    code, _, err = run("restore", root, "--backup", backup, "--recovery-key", keys[0][0],
                       "--recovery-passphrase-file", keys[1][2], "--recovery-key", keys[2][0],
                       "--recovery-passphrase-file", keys[2][2], "--out", new_host)
    assert code != 0 and "does not open" in err and PASSPHRASE.decode() not in err

    code, out, err = run("restore", root, "--backup", backup,
                         "--recovery-key", keys[0][0], "--recovery-passphrase-file", keys[0][2],
                         "--recovery-key", keys[2][0], "--recovery-passphrase-file", keys[2][2],
                         "--out", new_host)
    assert code == 0, err
    assert x2 not in out + err
    restored = json.loads(out)
    node_toml = Path(restored["node_toml"])
    cfg = load_node_config(node_toml)  # production config, every file checks
    # Neither the recovery passphrases nor the new host's seal passphrase are shown.
    assert cfg.passphrase_file is not None
    for secret in (PASSPHRASE, cfg.passphrase_file.read_bytes().strip()):
        assert secret.decode() not in out + err
    old_cluster = load_cluster_config(root / "cluster.toml")
    for p in (cfg.tls_key, cfg.identity_key, cfg.passphrase_file):
        assert p is not None and stat.S_IMODE(p.stat().st_mode) == 0o600
    # The share is only sealed; the one clear file is the key's public ceremony history,
    # the sessions of its transcript, for node 2's closing record of the next refresh.
    [history] = cfg.data_dir.rglob("*.json")
    assert history.parent.name == "ceremony"
    sessions = json.loads(history.read_text())["sessions"]
    assert sessions == json.loads((root / "transcripts" / "hot.json").read_text()
                                  )["closing"]["sessions"]
    change_file = Path(restored["identity_change"])

    # A node whose identity the cluster does not know yet does not start.
    test_toml = make_test_config(node_toml)
    refused = subprocess.run(node_command(test_toml), capture_output=True, timeout=60)
    assert refused.returncode != 0
    assert b"do not match node 2's public identity" in refused.stderr + refused.stdout

    # The admin quorum is 2: one admin's signature, or a stranger's, does not count.
    assert run("identity-change", "sign", change_file, "--admin-key",
               root / "admins" / "admin1.key", "--admin-id", "admin1")[0] == 0
    stranger = tmp_path / "stranger.key"
    stranger.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    assert run("identity-change", "sign", change_file, "--admin-key", stranger,
               "--admin-id", "admin2")[0] == 0
    assert run("identity-change", "sign", change_file, "--admin-key",
               root / "node1" / "tls.key", "--admin-id", "admin2")[0] != 0  # not Ed25519
    code, _, err = run("identity-change", "apply", root, change_file)
    assert code != 0 and "has 1 of the 2 admin signatures" in err
    assert 'the signature of "admin2" is not over this change' in err
    assert load_cluster_config(root / "cluster.toml").nodes[2] == old_cluster.nodes[2]
    assert run("identity-change", "sign", change_file, "--admin-key",
               root / "admins" / "admin3.key", "--admin-id", "admin3")[0] == 0
    code, _, err = run("identity-change", "apply", root, change_file)
    assert code == 0, err
    new_cluster = load_cluster_config(root / "cluster.toml")
    assert new_cluster.nodes[2].identity.fingerprint == restored["fingerprint"]
    assert new_cluster.nodes[1] == old_cluster.nodes[1]
    code, _, err = run("identity-change", "apply", root, change_file)  # a replay
    assert code != 0 and "applied already" in err

    # The other nodes read cluster.toml at start: restart them, start the new node 2.
    assert run("down", root)[0] == 0
    procs = [subprocess.Popen(node_command(c), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for c in (root / "node1" / "node.toml", root / "node3" / "node.toml", test_toml)]
    try:
        sign_with_node_2(root)
        refresh_after_the_restore(root, tmp_path, restored["fingerprint"])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def refresh_after_the_restore(root: Path, tmp_path: Path, fingerprint: str) -> None:
    """The key is refreshed with node 2's new identity: its transcript records the signed
    change before the refresh and verifies offline against cluster.toml; without the
    change record, or with one admin signature short, it does not."""
    # Without the applied change on file the transcript could not record it: refused
    # before any session runs.
    applied = next((root / "identity_changes").glob("node2-*.json"))
    hidden = tmp_path / applied.name
    applied.rename(hidden)
    code, _, err = run("refresh", root, "--key-id", "hot")
    assert code != 0 and "no applied identity change leads node 2" in err
    hidden.rename(applied)

    code, out, err = run("refresh", root, "--key-id", "hot")
    assert code == 0, err
    path = Path(json.loads(out)["transcript"])
    code, out, err = run("verify", path, "--cluster", root / "cluster.toml")
    assert code == 0, err
    assert "epoch:            1" in out and f"node 2: {fingerprint}" in out
    assert "before session 2: node 2's identity" in out
    doc = json.loads(path.read_text())
    [record] = doc["identity_changes"]
    assert record["before_session"] == 2  # after keygen and aux info, before the refresh
    assert record["document"] == json.loads(applied.read_text())
    sign_with_node_2(root)  # the refreshed shares sign

    # A transcript from which the change is removed: node 2's refresh messages are signed
    # by a key it does not hold.
    tampered = tmp_path / "no-change.json"
    tampered.write_text(json.dumps({**doc, "identity_changes": []}))
    code, _, err = run("verify", tampered)
    assert code != 0 and "transcript REJECTED: session 2 (refresh)" in err
    assert "party 2" in err and "signature does not verify" in err
    # ... or whose change lost an admin signature (quorum 2).
    short = json.loads(json.dumps(doc))
    short["identity_changes"][0]["document"]["signatures"].pop()
    tampered.write_text(json.dumps(short))
    code, _, err = run("verify", tampered)
    assert code != 0 and "has 1 of the 2 admin signatures required" in err
    # ... or that names admins of its own, who signed the change: alone it verifies, not
    # against the admins of cluster.toml.
    forged = json.loads(json.dumps(doc))
    stranger = Ed25519PrivateKey.generate()
    forged["cluster"]["admins"] = {"mallory": stranger.public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw).hex()}
    forged["cluster"]["admin_quorum"] = 1
    change, _ = ic.from_document(forged["identity_changes"][0]["document"])
    forged["identity_changes"][0]["document"] = ic.document(
        change, [ic.sign_change(change, stranger, "mallory")])
    tampered.write_text(json.dumps(forged))
    assert run("verify", tampered)[0] == 0
    code, _, err = run("verify", tampered, "--cluster", root / "cluster.toml")
    assert code != 0 and "admins or admin quorum" in err


def make_test_config(node_toml: Path) -> Path:
    """The restored node's config with the TEST ONLY switches the cluster's nodes have
    (bare-digest signing for this protocol-level test)."""
    cfg = load_node_config(node_toml)
    path = node_toml.with_name("node.test.toml")
    path.write_text(dump_test_node_config(
        dataclasses.replace(cfg, path=path),
        NodeSwitches(sign_unauthorized_digests=True)))
    return path


def sign_with_node_2(root: Path) -> None:
    key_id = bytes.fromhex(json.loads((root / "keys.json").read_text())["hot"])
    with Coordinator(load_coordinator_config(root), timeout=120.0) as coordinator:
        deadline = time.monotonic() + 60
        while set(coordinator.healthy()) != {1, 2, 3}:
            assert time.monotonic() < deadline, "nodes not healthy"
            time.sleep(0.2)
        public_key = coordinator.key_info(key_id).public_key
        assert coordinator.clients[2].info().keys[0].key_id == key_id
        for signers in ([1, 2], [2, 3]):
            digest = hashlib.sha256(f"after the recovery drill {signers}".encode()).digest()
            sig = coordinator.sign(key_id, digest, healthy=signers)
            assert openssl_verifies(public_key, digest, sig)


def test_a_backup_from_before_a_refresh_is_refused(cluster: Path, tmp_path: Path) -> None:
    root = cluster
    [(private, public, pf)] = recovery_keys(tmp_path, 1)
    old = tmp_path / "epoch0.backup"
    assert take_backup(root, old, [public])["epoch"] == 0
    code, _, err = run("refresh", root, "--key-id", "hot")
    assert code == 0, err
    new = tmp_path / "epoch1.backup"
    # As on node 2's own host: its node.toml, the key by id (a host has no keys.json).
    key_id = json.loads((root / "keys.json").read_text())["hot"]
    report = take_backup(root, new, [public], 1, "--key-id", key_id,
                         "--config", root / "node2" / "node.toml")
    assert (report["epoch"], report["key_id"]) == (1, key_id)
    assert run("backup", root, "--key-id", "hot", "--node", 2, "--to", public,
               "--out", new)[0] != 0  # a backup file is never overwritten

    code, out, err = run("verify-backup", old, "--dir", root)
    assert code != 0 and "nothing decrypted" not in out
    assert "epoch 0" in err and "now at epoch 1" in err
    assert run("verify-backup", new, "--dir", root)[0] == 0

    # An old backup relabelled with the current epoch and public share passes the label
    # check (it reads only labels) but does not open: the labels are bound to the payload.
    relabelled = tmp_path / "relabelled.backup"
    doc = json.loads(old.read_text())
    doc["labels"].update({k: v for k, v in json.loads(new.read_text())["labels"].items()
                          if k in ("epoch", "public_share")})
    relabelled.write_text(json.dumps(doc))
    assert run("verify-backup", relabelled, "--dir", root)[0] == 0

    kill_node(root, 2)
    shutil.rmtree(root / "node2")
    new_host = tmp_path / "newhost2"
    code, _, err = run("restore", root, "--backup", relabelled, "--recovery-key", private,
                       "--recovery-passphrase-file", pf, "--out", new_host)
    assert code != 0 and "failed to open" in err
    assert not new_host.exists()
    code, _, err = run("restore", root, "--backup", old, "--recovery-key", private,
                       "--recovery-passphrase-file", pf, "--out", new_host)
    assert code != 0
    assert "holds the share of epoch 0" in err and "now at epoch 1" in err
    assert not new_host.exists()
    # The current backup restores.
    code, _, err = run("restore", root, "--backup", new, "--recovery-key", private,
                       "--recovery-passphrase-file", pf, "--out", new_host)
    assert code == 0, err


def test_a_backup_sealed_by_an_insider_with_other_peers_parameters_is_refused(
        cluster: Path, tmp_path: Path) -> None:
    """An insider who holds x_2 and the recovery key (so can seal a backup the labels
    accept) plants node 1's Paillier and ring-Pedersen parameters as node 3's: the restored
    node 2 would prove its ranges to node 3 under parameters the insider chose. Restore
    compares the payload with the transcript's aux info, and writes nothing."""
    root = cluster
    [(private, public, pf)] = recovery_keys(tmp_path, 1)
    cfg = load_node_host(root / "node2" / "node.toml")
    key_id = bytes.fromhex(json.loads((root / "keys.json").read_text())["hot"])
    files = SealedKeyFiles(cfg.data_dir, cfg.open_seal())
    share, aux = files.key_share(key_id), files.aux_info(key_id)
    peers = {**aux.peers, 3: aux.peers[1]}
    forged = dataclasses.replace(aux, peers=peers)
    cluster_name = load_cluster_config(root / "cluster.toml").name
    backup = tmp_path / "forged.backup"
    backup.write_bytes(sb.to_json(sb.encrypt_backup(
        cluster_name, sb.BackupPayload(share, forged), [load_recovery_public(public)], 1,
        SystemRandom())))
    assert run("verify-backup", backup, "--dir", root)[0] == 0  # the labels are node 2's
    new_host = tmp_path / "newhost2"
    code, out, err = run("restore", root, "--backup", backup, "--recovery-key", private,
                         "--recovery-passphrase-file", pf, "--out", new_host)
    assert code != 0
    assert "aux info for node 2" in err and "not the one the key's aux-info session" in err
    assert not new_host.exists()
    assert format(share.x, "x") not in out + err

    # Into a directory that already holds a node (node 3's host): refused, left as it was.
    honest = tmp_path / "node2.backup"
    take_backup(root, honest, [public])
    before = {p: p.read_bytes() for p in [*(root / "node3").glob("*.*"),
                                          *(root / "node3" / "data" / "keys").iterdir()]
              if p.is_file() and p.name != "node.pid"}
    assert any(p.name.endswith(".keyshare.sealed") for p in before)
    code, _, err = run("restore", root, "--backup", honest, "--recovery-key", private,
                       "--recovery-passphrase-file", pf, "--out", root / "node3")
    assert code != 0 and "is not empty" in err
    assert {p: p.read_bytes() for p in before} == before
