"""``mpc-ceremony`` commands for backup and recovery (docs/backup.md).

    recovery-key new --out PREFIX            X25519 pair: PREFIX.key (0600, encrypted), PREFIX.pub
    backup DIR --key-id ID --node I --to PUB[,PUB…] [--quorum K] [--config node.toml]
                                             node I's share encrypted to the recovery keys
    verify-backup FILE --dir DIR             labels against the key's verified transcript
    restore DIR --backup FILE --recovery-key KEY… --out NEWDIR
                                             the node on a new host, new TLS and identity keys
    identity-change sign FILE --admin-key K --admin-id ID
    identity-change apply DIR FILE           admin quorum checked, cluster.toml updated

Passphrases (a recovery key's) come from a 0600 file or ``$MPC_RECOVERY_PASSPHRASE``, never
from the command line. Nothing here prints or logs a share, a key or a passphrase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from coordinator.ceremony_cli import KEYS_FILE, _keys, _latest_transcript, _say
from coordinator.coordinator_errors import CoordinatorError
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony import share_backup as sb
from mpcnode.ceremony.cluster_file import dump_cluster_config, load_cluster_config
from mpcnode.ceremony.node_config import load_node_host
from mpcnode.ceremony.node_restore import restore_node
from mpcnode.ceremony.recovery_key import (
    load_recovery_private,
    load_recovery_public,
    new_recovery_key,
)
from mpcnode.state.atomic_file import write_new, write_public
from mpcnode.state.node_store import SealedKeyFiles
from mpcnode.state.seal import passphrase_from_env_or_file
from mpcnode.transport.ceremony_closing import SessionRef
from mpcnode.transport.identity import IdentityPublic
from mpcnode.transport.system_random import SystemRandom

if TYPE_CHECKING:
    from coordinator.transcript_verify import VerifiedCeremony

PASSPHRASE_ENV = "MPC_RECOVERY_PASSPHRASE"


def _passphrase(file: Path | None) -> bytes:
    return passphrase_from_env_or_file(None if file else PASSPHRASE_ENV, file)


def _label_of(root: Path, key_id: bytes) -> str:
    for label, hex_id in _keys(root).items():
        if hex_id == key_id.hex():
            return label
    raise CoordinatorError(f"key {key_id.hex()} is not in {root / KEYS_FILE}")


def _key_id_or_hex(root: Path, key: str) -> bytes:
    """A label of DIR/keys.json, or the key id itself (64 hex digits): a node's host has
    no keys.json."""
    hex_id = _keys(root).get(key) if (root / KEYS_FILE).exists() else None
    if hex_id is None and len(key) == 64:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(key)
    if hex_id is None:
        raise CoordinatorError(f"no key labelled {key!r} in {root / KEYS_FILE}")
    return bytes.fromhex(hex_id)


def current_key(root: Path, label: str) -> tuple[VerifiedCeremony, tuple[SessionRef, ...]]:
    """The key now (public data with its epoch and public shares, aux info digest) and its
    ceremony history, from its newest transcript (refresh or reshare), every session and
    proof verified: the record refresh and reshare keep, so a backup is checked against it
    without asking a node."""
    from coordinator.transcript_verify import verify

    t = _latest_transcript(root, label)
    return verify(t), t.session_refs


def cmd_recovery_key_new(args: argparse.Namespace) -> int:
    prefix: Path = args.out
    raw = new_recovery_key(prefix.with_suffix(".key"), prefix.with_suffix(".pub"),
                           _passphrase(args.passphrase_file))
    _say(f"recovery key: private {prefix.with_suffix('.key')} (0600, encrypted; keep it "
         f"offline), public {prefix.with_suffix('.pub')}")
    print(json.dumps({"public_key": raw.hex(), "private": str(prefix.with_suffix(".key")),
                      "public": str(prefix.with_suffix(".pub"))}))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    root: Path = args.dir
    key_id = _key_id_or_hex(root, args.key_id)
    cfg = load_node_host(args.config or root / f"node{args.node}" / "node.toml")
    if cfg.node_id != args.node:
        raise CoordinatorError(f"{cfg.path} is the config of node {cfg.node_id}, not {args.node}")
    cluster = load_cluster_config(cfg.cluster_file)
    seal = cfg.open_seal()
    try:
        files = SealedKeyFiles(cfg.data_dir, seal)
        payload = sb.BackupPayload(files.key_share(key_id), files.aux_info(key_id))
    finally:
        seal.close()
    recipients = [load_recovery_public(Path(p)) for p in args.to.split(",") if p]
    backup = sb.encrypt_backup(cluster.name, payload, recipients, args.quorum, SystemRandom())
    out: Path = args.out or (root / "backups" /
                             f"{args.key_id}.node{args.node}.epoch{backup.labels.epoch}.backup")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not write_new(out, sb.to_json(backup)):
        raise CoordinatorError(f"{out} exists: refusing to overwrite a backup")
    _say(f"backup of node {args.node}'s share of {args.key_id!r} (epoch "
         f"{backup.labels.epoch}) encrypted to {len(recipients)} recovery keys, "
         f"{args.quorum} needed to open: {out}")
    print(json.dumps(_describe(backup, out)))
    return 0


def _describe(backup: sb.ShareBackup, path: Path) -> dict[str, object]:
    return {"backup": str(path), **backup.labels.to_json(), "quorum": backup.quorum,
            "recipients": [r.hex() for r in backup.recipients()]}


def _load_backup(path: Path) -> sb.ShareBackup:
    try:
        return sb.from_json(path.read_bytes())
    except OSError as exc:
        raise CoordinatorError(f"cannot read backup {path}: {exc.strerror}") from None


def cmd_verify_backup(args: argparse.Namespace) -> int:
    root: Path = args.dir
    backup = _load_backup(args.file)
    label = _label_of(root, backup.labels.key_id)
    sb.check_labels(backup.labels, current_key(root, label)[0].key,
                    load_cluster_config(root / "cluster.toml").name)
    print(f"backup {args.file}: labels match key {label!r} at its current epoch "
          f"{backup.labels.epoch} (nothing decrypted)")
    print(json.dumps(_describe(backup, args.file)))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    root: Path = args.dir
    cluster = load_cluster_config(root / "cluster.toml")
    backup = _load_backup(args.backup)
    label = _label_of(root, backup.labels.key_id)
    current, history = current_key(root, label)
    sb.check_labels(backup.labels, current.key, cluster.name)  # before decrypting
    files: list[Path] = args.recovery_passphrase_file or []
    if files and len(files) != len(args.recovery_key):
        raise CoordinatorError("give one --recovery-passphrase-file per --recovery-key, or "
                               f"none (then ${PASSPHRASE_ENV})")
    keys = [load_recovery_private(k, _passphrase(files[n] if files else None))
            for n, k in enumerate(args.recovery_key)]
    payload = sb.open_backup(backup, keys)
    sb.check_restorable(payload, current.key, current.aux_digest)
    ca_cert = root / "ca" / "ca.pem"
    ca_key: Path = args.ca_key or root / "ca" / "ca.key"
    restored = restore_node(cluster, payload, args.out, ca=(ca_key.read_bytes(),
                                                            ca_cert.read_bytes()),
                            ca_cert_path=ca_cert, history=history, address=args.address)
    _say(f"node {backup.labels.node} restored in {args.out} (key {label!r}, epoch "
         f"{backup.labels.epoch}); new identity {restored.change.new.fingerprint}")
    _say(f"next: admins sign {restored.change_file} (mpc-ceremony identity-change sign), "
         "then `mpc-ceremony identity-change apply` on every host's cluster.toml and a "
         "restart of the nodes")
    print(json.dumps({"node": backup.labels.node, "node_toml": str(restored.node_toml),
                      "identity_change": str(restored.change_file),
                      "fingerprint": restored.change.new.fingerprint}))
    return 0


def cmd_identity_sign(args: argparse.Namespace) -> int:
    change, signatures = ic.from_json(args.file.read_bytes())
    key = load_pem_private_key(args.admin_key.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise CoordinatorError(f"{args.admin_key} is not an Ed25519 admin key")
    kept = tuple(s for s in signatures if s.admin_id != args.admin_id)
    write_public(args.file, ic.to_json(change, (*kept, ic.sign_change(change, key,
                                                                        args.admin_id))))
    _say(f"signed by {args.admin_id!r}: node {change.node} → identity "
         f"{change.new.fingerprint} at {change.address}")
    return 0


def retired_identities(records: Path) -> list[IdentityPublic]:
    """The identities the changes applied here replaced (their records, written by
    ``identity-change apply``): none of their keys may be a node's identity again."""
    return [ic.from_json(p.read_bytes())[0].old for p in sorted(records.glob("*.json"))]


def cmd_identity_apply(args: argparse.Namespace) -> int:
    root: Path = args.dir
    cluster_file = root / "cluster.toml"
    cluster = load_cluster_config(cluster_file)
    change, signatures = ic.from_json(args.file.read_bytes())
    tag = change.digest.hex()[:16]
    records = root / "identity_changes"
    updated = ic.apply_change(cluster, change, signatures, root / "ca" / "ca.pem",
                              root / "certs" / f"node{change.node}-{tag}.pem",
                              retired_identities(records))
    record = ic.applied_path(root, change)
    record.parent.mkdir(mode=0o755, exist_ok=True)
    write_public(record, ic.to_json(change, signatures))
    write_public(cluster_file, dump_cluster_config(updated).encode())
    _say(f"node {change.node}: identity {change.old.fingerprint} → {change.new.fingerprint}, "
         f"address {change.address}; restart the nodes so they read {cluster_file}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("recovery-key", help="offline recovery keys that backups open with")
    rk = p.add_subparsers(dest="recovery_command", required=True)
    q = rk.add_parser("new", help="make an X25519 recovery key pair")
    q.add_argument("--out", type=Path, required=True, help="PREFIX: writes PREFIX.key, .pub")
    q.add_argument("--passphrase-file", type=Path, default=None,
                   help=f"0600 file with the passphrase (default: ${PASSPHRASE_ENV})")
    q.set_defaults(fn=cmd_recovery_key_new)

    p = sub.add_parser("backup", help="node I's share, encrypted to the recovery keys")
    p.add_argument("dir", type=Path)
    p.add_argument("--key-id", required=True, help="a label of DIR/keys.json, or the key id")
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--to", required=True, help="recovery public key files, comma-separated")
    p.add_argument("--quorum", type=int, default=1, help="recovery keys needed to open")
    p.add_argument("--config", type=Path, default=None,
                   help="node I's node.toml (default DIR/nodeI/node.toml)")
    p.add_argument("--out", type=Path, default=None)
    p.set_defaults(fn=cmd_backup)

    p = sub.add_parser("verify-backup", help="check a backup's labels without decrypting")
    p.add_argument("file", type=Path)
    p.add_argument("--dir", type=Path, required=True, help="the cluster directory")
    p.set_defaults(fn=cmd_verify_backup)

    p = sub.add_parser("restore", help="install a backup on a new host directory")
    p.add_argument("dir", type=Path)
    p.add_argument("--backup", type=Path, required=True)
    p.add_argument("--recovery-key", type=Path, action="append", required=True)
    p.add_argument("--recovery-passphrase-file", type=Path, action="append")
    p.add_argument("--out", type=Path, required=True, help="the new host directory")
    p.add_argument("--address", default=None, help="host:port of the new host")
    p.add_argument("--ca-key", type=Path, default=None, help="default DIR/ca/ca.key")
    p.set_defaults(fn=cmd_restore)

    p = sub.add_parser("identity-change", help="a node's new identity, signed by admins")
    ch = p.add_subparsers(dest="identity_command", required=True)
    q = ch.add_parser("sign", help="add an admin's signature")
    q.add_argument("file", type=Path)
    q.add_argument("--admin-key", type=Path, required=True)
    q.add_argument("--admin-id", required=True)
    q.set_defaults(fn=cmd_identity_sign)
    q = ch.add_parser("apply", help="check the admin quorum and update cluster.toml")
    q.add_argument("dir", type=Path)
    q.add_argument("file", type=Path)
    q.set_defaults(fn=cmd_identity_apply)
