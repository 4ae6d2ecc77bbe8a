"""``mpc-ceremony``: the key ceremony, for operators and auditors.

    mpc-ceremony init --nodes N --threshold T --out DIR   CA, certificates, identities, configs
        [--seal pkcs11 --pkcs11-module SO --pkcs11-token LABEL --pkcs11-pin-env VAR]
                                                          each node's KEK made in a PKCS#11 token
    mpc-ceremony up DIR [--test-only-nodes]               start DIR's nodes on loopback
    mpc-ceremony down DIR                                 stop them (only processes confirmed
                                                          to be DIR's nodes)
    mpc-ceremony keygen DIR --key-id ID                   keygen + aux info; DIR/transcripts/ID.json
    mpc-ceremony verify FILE [--cluster cluster.toml]     re-verify a transcript offline
    mpc-ceremony refresh DIR --key-id ID                  proactive refresh of the key ID
    mpc-ceremony recovery-key new --out PREFIX            an offline recovery key pair
    mpc-ceremony backup DIR --key-id ID --node I --to PUB[,PUB…] [--quorum K]
    mpc-ceremony verify-backup FILE --dir DIR             a backup's labels, not decrypted
    mpc-ceremony restore DIR --backup FILE --recovery-key KEY --out NEWDIR
    mpc-ceremony identity-change sign|apply …             a restored node's new identity
    mpc-ceremony add-node DIR                             one more node under the same CA
    mpc-ceremony set-threshold DIR T                      t of cluster.toml (restart the
                                                          nodes, then reshare every key)
    mpc-ceremony reshare DIR --key-id ID --to-nodes 1,2,4,6 --threshold 3
                                                          move key ID to a new committee;
                                                          DIR/transcripts/ID.reshare-<epoch>.json
    mpc-ceremony audit-key DIR --oms-public-key PEM [--max-head-age-seconds S]
                                                          nodes witness that OMS audit log
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from coordinator import ceremony_transcript as transcript
from coordinator import node_process
from coordinator.coordinator import Coordinator
from coordinator.coordinator_errors import CoordinatorError
from mpcnode.ceremony.cluster_file import (
    ClusterConfig,
    load_cluster_config,
    load_coordinator_config,
    set_oms_audit_key,
    set_threshold,
)
from mpcnode.ceremony.cluster_init import (
    DEFAULT_KEY_LABEL,
    ClusterInitError,
    TokenSealing,
    add_node,
    init_cluster,
)
from mpcnode.ceremony.identity_change import IdentityChangeError, load_applied
from mpcnode.ceremony.node_config import load_node_config
from mpcnode.ceremony.node_join import give_key
from mpcnode.ceremony.recovery_key import RecoveryKeyError
from mpcnode.ceremony.share_backup import BackupError
from mpcnode.core.config_schema import ConfigError
from mpcnode.core.errors import UsageError
from mpcnode.crypto import codec
from mpcnode.protocol.registry import ProtocolName
from mpcnode.protocol.results import ReshareResult
from mpcnode.state.node_store import StoreError
from mpcnode.state.seal import SealError

KEYS_FILE = "keys.json"  # label → key id (hex), kept beside cluster.toml
NODE_MODULE = "mpcnode"  # ``mpcnode serve``: the production daemon
TEST_NODE_MODULE = "test_only.node_daemon"  # TEST ONLY: honours node.toml's [testing]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pidfile(root: Path, i: int) -> Path:
    return root / f"node{i}" / "node.pid"


def _config(root: Path, i: int) -> Path:
    return root / f"node{i}" / "node.toml"


def _running(root: Path, i: int) -> node_process.PidRecord | None:
    """Node i's confirmed process, or None. A pid file that names no live process, or
    another process than node i's, is removed with one line saying so: it is never
    signalled."""
    path = _pidfile(root, i)
    rec = node_process.read(path, _config(root, i))
    if rec is None:
        path.unlink(missing_ok=True)
        return None
    verdict = node_process.check(rec, _config(root, i))
    if verdict.status is node_process.Status.RUNNING:
        return rec
    path.unlink(missing_ok=True)
    if verdict.status is node_process.Status.GONE:
        _say(f"node {i}: not running ({verdict.why}); stale {path} removed")
    else:
        _say(f"node {i}: {verdict.why}: left alone, {path} removed")
    return None


def _token_sealing(args: argparse.Namespace) -> TokenSealing | None:
    if args.seal == "passphrase":
        given = [f"--pkcs11-{k}" for k in ("module", "token", "pin-env", "pin-file")
                 if getattr(args, f"pkcs11_{k.replace('-', '_')}") is not None]
        if given:
            raise ClusterInitError(f"{', '.join(given)} need --seal pkcs11")
        return None
    if args.pkcs11_module is None or args.pkcs11_token is None:
        raise ClusterInitError("--seal pkcs11 needs --pkcs11-module and --pkcs11-token")
    if (args.pkcs11_pin_env is None) == (args.pkcs11_pin_file is None):
        raise ClusterInitError("--seal pkcs11 needs exactly one of --pkcs11-pin-env, "
                               "--pkcs11-pin-file")
    return TokenSealing(
        module=args.pkcs11_module.absolute(), token_label=args.pkcs11_token,
        key_label=args.pkcs11_key_label, pin_env=args.pkcs11_pin_env,
        pin_file=args.pkcs11_pin_file.absolute() if args.pkcs11_pin_file else None)


def cmd_init(args: argparse.Namespace) -> int:
    layout = init_cluster(args.out, args.nodes, args.threshold, host=args.host,
                          base_port=args.base_port, metrics_base_port=args.metrics_base_port,
                          token=_token_sealing(args))
    cluster = load_cluster_config(layout.cluster_file)
    _say(f"cluster {cluster.name!r}: {args.threshold}-of-{args.nodes} "
         f"(t = {args.threshold} signers needed) in {args.out}")
    for i, e in sorted(cluster.nodes.items()):
        _say(f"  node {i}: {e.address}  {args.out / f'node{i}'}")
    _say(f"  coordinator: {args.out / 'coordinator'}")
    _say(f"  CA key: {args.out / 'ca' / 'ca.key'}  (take it offline after the ceremony)")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    root: Path = args.dir
    cluster = load_cluster_config(root / "cluster.toml")
    module = TEST_NODE_MODULE if args.test_only_nodes else NODE_MODULE
    for i in sorted(cluster.nodes):
        if _running(root, i) is not None:
            _say(f"node {i}: already running")
            continue
        config = _config(root, i).resolve()
        with (root / f"node{i}" / "node.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--config", str(config)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        node_process.write(_pidfile(root, i), node_process.record(proc.pid, config))
        _say(f"node {i}: started (pid {proc.pid}, log {root / f'node{i}' / 'node.log'})")
    with Coordinator(load_coordinator_config(root)) as coordinator:
        deadline = time.monotonic() + args.timeout
        while True:
            healthy = set(coordinator.healthy())
            _say(f"  healthy: {len(healthy)}/{len(cluster.nodes)}")
            if healthy == set(cluster.nodes):
                break
            dead = [i for i in cluster.nodes if _running(root, i) is None]
            if dead or time.monotonic() > deadline:
                why = f"nodes {dead} exited" if dead else f"not healthy after {args.timeout}s"
                _say(f"error: {why}; see the node logs (`mpc-ceremony down {root}` stops "
                     "the others)")
                return 1
            time.sleep(0.5)
    _say("all nodes healthy")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    root: Path = args.dir
    cluster = load_cluster_config(root / "cluster.toml")
    confirmed = {i: rec for i in sorted(cluster.nodes) if (rec := _running(root, i))}
    node_process.stop(confirmed, {i: _config(root, i) for i in confirmed}, args.timeout, _say)
    for i in confirmed:
        _pidfile(root, i).unlink(missing_ok=True)
    return 0


def _keys(root: Path) -> dict[str, str]:
    path = root / KEYS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _key_id(root: Path, label: str) -> bytes:
    try:
        return bytes.fromhex(_keys(root)[label])
    except KeyError:
        raise CoordinatorError(f"no key labelled {label!r} in {root / KEYS_FILE}") from None


def cmd_keygen(args: argparse.Namespace) -> int:
    root: Path = args.dir
    label: str = args.key_id
    if label in _keys(root):
        raise CoordinatorError(f"a key labelled {label!r} already exists")
    config = load_coordinator_config(root)
    with Coordinator(config) as coordinator:
        kg, rec1 = coordinator.keygen(progress=_say)
        _say("aux info: each node makes its Paillier key (safe primes) and proofs …")
        _, rec2 = coordinator.aux_info(kg.key_id, progress=_say)
        t = transcript.close(transcript.from_records(
            config.cluster, kg.key_id, kg.public_key.to_bytes(), [rec1, rec2], kg.threshold),
            coordinator.close_transcript(kg.key_id))
    keys = _keys(root)
    keys[label] = kg.key_id.hex()
    (root / KEYS_FILE).write_text(json.dumps(keys, indent=1) + "\n")
    out = root / "transcripts" / f"{label}.json"
    transcript.write(out, t)
    return _report(out, t)


def _report(out: Path, t: transcript.Transcript) -> int:
    from coordinator.transcript_verify import verify

    v = verify(t)
    print(json.dumps({"key": out.stem, "key_id": v.key_id.hex(),
                      "public_key": v.public_key.to_bytes().hex(),
                      "ethereum_address": v.ethereum_address, "threshold": v.threshold,
                      "parties": list(v.parties), "transcript": str(out)}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from coordinator.transcript_verify import check_cluster, verify

    t = transcript.load(args.file)
    v = verify(t)
    if args.cluster is not None:
        check_cluster(t, v, load_cluster_config(args.cluster))
    print(f"transcript {args.file}: OK" + (f", matches {args.cluster}" if args.cluster else ""))
    print(f"  key id:           {v.key_id.hex()}")
    print(f"  public key:       {v.public_key.to_bytes().hex()}")
    print(f"  ethereum address: {v.ethereum_address}")
    print(f"  threshold:        {v.threshold}-of-{len(v.parties)} (parties {list(v.parties)})")
    print(f"  epoch:            {v.epoch}")
    for s in t.sessions:  # each result was checked against the replay by verify
        if s.protocol == ProtocolName.RESHARE:
            erased = codec.from_bytes(ReshareResult, s.results[s.parties[0]].encode()).erased
            print(f"  reshare to {list(s.params['new_parties'])} (t = {s.params['threshold']}): "
                  f"shares erased by nodes {list(erased)}")
    for r in t.identity_changes:  # each checked against the admins by verify
        print(f"  before session {r.before_session}: node {r.change.node}'s identity "
              f"{r.change.old.fingerprint} -> {r.change.new.fingerprint}, the admin "
              f"quorum's signatures checked ({r.change.reason})")
    print(f"  sessions: {v.sessions}, messages: {v.messages}, every signature and proof checked")
    print("  closing record signed by every node; node identity key fingerprints "
          "(compare them with what each operator reports):")
    for i, identity in sorted(t.current_identities.items()):
        print(f"    node {i}: {identity.fingerprint}")
    return 0


def _latest_transcript(root: Path, label: str) -> transcript.Transcript:
    """The key's newest transcript: each holds the key's whole history, so the newest is
    the longest (``ID.json``, or a later ``ID.reshare-<epoch>.json``)."""
    found = [transcript.load(f) for f in sorted((root / "transcripts").glob(f"{label}.*json"))
             if f.name == f"{label}.json" or f.name.startswith(f"{label}.reshare-")]
    if not found:
        raise CoordinatorError(f"no transcript of key {label!r} in {root / 'transcripts'}")
    return max(found, key=lambda t: len(t.sessions))


def cmd_refresh(args: argparse.Namespace) -> int:
    root: Path = args.dir
    key_id = _key_id(root, args.key_id)
    config = load_coordinator_config(root)
    prior = _latest_transcript(root, args.key_id)
    _check_changes(prior, root, config.cluster)
    with Coordinator(config) as coordinator:
        result, records = coordinator.refresh(key_id, progress=_say)
        t = transcript.close(
            transcript.extend(prior, config.cluster, records, prior.threshold,
                              load_applied(root)),
            coordinator.close_transcript(key_id, result.parties))
    out = root / "transcripts" / f"{args.key_id}.json"
    transcript.write(out, t)
    _say(f"refreshed: epoch {result.epoch}, public key unchanged")
    return _report(out, t)


def _check_changes(prior: transcript.Transcript, root: Path, cluster: ClusterConfig) -> None:
    """Before any session runs: the key's transcript can record how every node got from
    its identity in the transcript to the one in cluster.toml (the changes applied under
    ``identity_changes/``, each signed by the transcript's admin quorum); else the new
    sessions would leave it unverifiable."""
    from coordinator.transcript_verify import identities_in_force

    identities_in_force(transcript.extend(prior, cluster, [], prior.threshold,
                                          load_applied(root)))


def cmd_add_node(args: argparse.Namespace) -> int:
    """A new node directory and cluster.toml entry; the node is given the verified public
    data and ceremony history of every key in keys.json, so that a reshare can move a
    key to it (it accepts no other key)."""
    from coordinator.transcript_verify import verify

    root: Path = args.dir
    given = []
    verified = [(label, _latest_transcript(root, label)) for label in sorted(_keys(root))]
    proved = [(label, t, verify(t)) for label, t in verified]
    i, node = add_node(root)
    cfg = load_node_config(node.node_toml)
    for label, t, v in proved:
        give_key(cfg, v.key, t.session_refs)
        given.append(label)
    address = load_cluster_config(root / "cluster.toml").nodes[i].address
    _say(f"node {i}: {node.directory} ({address}); restart the nodes (down, up) so that "
         "they know its identity")
    print(json.dumps({"node": i, "directory": str(node.directory), "keys": given}))
    return 0


def cmd_set_threshold(args: argparse.Namespace) -> int:
    """t in cluster.toml; the nodes read it when they (re)start. Keys of the old t are
    refused for signing until reshared to the new one (``--threshold`` of reshare)."""
    path = args.dir.absolute() / "cluster.toml"
    old = load_cluster_config(path).threshold
    cfg = set_threshold(path, args.threshold)
    print(json.dumps({"cluster": str(path), "threshold": cfg.threshold,
                      "nodes": sorted(cfg.nodes), "previous_threshold": old}))
    _say(f"t = {cfg.threshold} of {len(cfg.nodes)} nodes in {path}: restart the nodes "
         "(mpc-ceremony down/up), then reshare every key to it (mpc-ceremony reshare … "
         f"--threshold {cfg.threshold}); until then the nodes refuse to sign with a key of "
         "another t")
    return 0


def _node_list(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",")]
    except ValueError:
        raise CoordinatorError(f"--to-nodes {text!r}: expected node ids like 1,2,4,6") from None
    if not ids or ids != sorted(set(ids)) or ids[0] < 1:
        raise CoordinatorError(f"--to-nodes {text!r}: expected distinct ascending node ids")
    return ids


def cmd_reshare(args: argparse.Namespace) -> int:
    root: Path = args.dir
    key_id = _key_id(root, args.key_id)
    new_parties = _node_list(args.to_nodes)
    config = load_coordinator_config(root)
    cluster = config.cluster
    unknown = sorted(set(new_parties) - set(cluster.nodes))
    if unknown:
        raise CoordinatorError(f"--to-nodes: nodes {unknown} are not in {cluster.path} "
                               "(add them with `mpc-ceremony add-node`)")
    if not 1 <= args.threshold <= len(new_parties):
        raise CoordinatorError(f"--threshold {args.threshold} is not in 1..{len(new_parties)}")
    if args.threshold != cluster.threshold:
        raise CoordinatorError(
            f"--threshold {args.threshold} is not {cluster.path}'s threshold "
            f"{cluster.threshold}: nodes reshare only to their cluster.toml's threshold; "
            "change it there and restart the nodes first")
    prior = _latest_transcript(root, args.key_id)
    _check_changes(prior, root, cluster)
    with Coordinator(config) as coordinator:
        result, records = coordinator.reshare(key_id, new_parties, args.threshold,
                                              progress=_say)
        t = transcript.close(
            transcript.extend(prior, cluster, records, args.threshold, load_applied(root)),
            coordinator.close_transcript(key_id, new_parties))
    out = root / "transcripts" / f"{args.key_id}.reshare-{result.key.epoch}.json"
    transcript.write(out, t)
    _say(f"reshared: {result.key.threshold}-of-{len(result.key.parties)} "
         f"(parties {list(result.key.parties)}), epoch {result.key.epoch}, public key "
         f"unchanged; erased by nodes {list(result.erased)}")
    return _report(out, t)


def cmd_audit_key(args: argparse.Namespace) -> int:
    """Name the OMS audit key in cluster.toml; the nodes read it when they (re)start."""
    path = args.dir.absolute() / "cluster.toml"
    try:
        pem = args.oms_public_key.read_bytes()
    except OSError as exc:
        raise ConfigError(args.oms_public_key, "(file)", f"cannot read: {exc.strerror}") \
            from None
    cfg = set_oms_audit_key(path, pem, replace=args.replace,
                            max_head_age_s=args.max_head_age_seconds)
    assert cfg.audit_key is not None
    print(json.dumps({"cluster": str(path), "oms_public_key": cfg.audit_key.hex(),
                      "max_head_age_seconds": cfg.audit_max_head_age_s}))
    _say("restart the nodes (mpc-ceremony down/up) for them to witness this audit log")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mpc-ceremony", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="make the CA, certificates, identity keys and configs")
    p.add_argument("--nodes", type=int, required=True, help="n, the number of signer nodes")
    p.add_argument("--threshold", type=int, required=True, help="t, the minimum number of signers")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1", help="address the nodes listen on")
    p.add_argument("--base-port", type=int, default=7100, help="node i listens on base + i")
    p.add_argument("--metrics-base-port", type=int, default=9100)
    p.add_argument("--seal", choices=("passphrase", "pkcs11"), default="passphrase",
                   help="what holds each node's key-encryption key: a passphrase file "
                        "(default) or a PKCS#11 token, where the ceremony creates the key")
    p.add_argument("--pkcs11-module", type=Path, help="the token's PKCS#11 library (.so)")
    p.add_argument("--pkcs11-token", help="token label; {node} becomes the node id")
    p.add_argument("--pkcs11-key-label", default=DEFAULT_KEY_LABEL,
                   help="key label in the token; {node} becomes the node id")
    p.add_argument("--pkcs11-pin-env", help="environment variable holding the token PIN "
                                           "(the nodes read the same variable)")
    p.add_argument("--pkcs11-pin-file", type=Path,
                   help="0600 file holding the token PIN (the nodes read the same file)")
    p.set_defaults(fn=cmd_init)
    p = sub.add_parser("up", help="start the nodes of DIR on this machine")
    p.add_argument("dir", type=Path)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--test-only-nodes", action="store_true",
                   help=f"TEST ONLY: start the nodes with `python -m {TEST_NODE_MODULE}`, "
                        "which honours node.toml's [testing] section (never in production)")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser("down", help="stop the nodes of DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds the nodes get to stop after SIGTERM before SIGKILL")
    p.set_defaults(fn=cmd_down)
    p = sub.add_parser("keygen", help="run keygen + aux info and write the transcript")
    p.add_argument("dir", type=Path)
    p.add_argument("--key-id", required=True, help="a label for the new key")
    p.set_defaults(fn=cmd_keygen)
    p = sub.add_parser("verify", help="re-verify every proof and signature of a transcript")
    p.add_argument("file", type=Path)
    p.add_argument("--cluster", type=Path, default=None,
                   help="cluster.toml to compare the identities, threshold and parties with")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("refresh", help="proactive refresh: new shares, same public key")
    p.add_argument("dir", type=Path)
    p.add_argument("--key-id", required=True)
    p.set_defaults(fn=cmd_refresh)
    p = sub.add_parser("audit-key", help="set the OMS audit public key the nodes witness")
    p.add_argument("dir", type=Path)
    p.add_argument("--oms-public-key", type=Path, required=True,
                   help="the OMS audit public key PEM (audit.pub.pem from oms init)")
    p.add_argument("--replace", action="store_true",
                   help="replace another key already in cluster.toml")
    p.add_argument("--max-head-age-seconds", type=int, default=None,
                   help="refuse tree heads dated further than this from a node's clock "
                        "(default: as set, else 600)")
    p.set_defaults(fn=cmd_audit_key)
    p = sub.add_parser("add-node", help="one more node (certificate, identity, config) "
                                        "under the same CA")
    p.add_argument("dir", type=Path)
    p.set_defaults(fn=cmd_add_node)
    p = sub.add_parser("set-threshold", help="change t in cluster.toml (then restart the "
                                             "nodes and reshare every key)")
    p.add_argument("dir", type=Path)
    p.add_argument("threshold", type=int, help="t, the minimum number of signers")
    p.set_defaults(fn=cmd_set_threshold)
    p = sub.add_parser("reshare", help="move a key to a new committee and/or threshold, "
                                       "same public key")
    p.add_argument("dir", type=Path)
    p.add_argument("--key-id", required=True)
    p.add_argument("--to-nodes", required=True, help="the new committee, e.g. 1,2,4,6")
    p.add_argument("--threshold", type=int, required=True,
                   help="t of the new committee (cluster.toml's threshold)")
    p.set_defaults(fn=cmd_reshare)
    from coordinator import backup_cli  # it imports this module's helpers

    backup_cli.add_parsers(sub)
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except transcript.TranscriptError as exc:
        print(f"transcript REJECTED: {exc}", file=sys.stderr)
        return 1
    except (CoordinatorError, ConfigError, ClusterInitError, OSError, BackupError,
            IdentityChangeError, RecoveryKeyError, SealError, StoreError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
