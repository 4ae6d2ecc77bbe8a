"""``mpc-ceremony``: the key ceremony, for operators and auditors.

    mpc-ceremony init --nodes N --threshold T --out DIR   CA, certificates, identities, configs
    mpc-ceremony up DIR [--test-only-nodes]               start DIR's nodes on loopback
    mpc-ceremony down DIR                                 stop them
    mpc-ceremony keygen DIR --key-id ID                   keygen + aux info; DIR/transcripts/ID.json
    mpc-ceremony verify FILE [--cluster cluster.toml]     re-verify a transcript offline
    mpc-ceremony refresh DIR --key-id ID                  proactive refresh of the key ID
    mpc-ceremony audit-key DIR --oms-public-key PEM [--max-head-age-seconds S]
                                                          nodes witness that OMS audit log
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from coordinator import ceremony_transcript as transcript
from coordinator.coordinator import Coordinator
from coordinator.coordinator_errors import CoordinatorError
from mpcnode.ceremony.cluster_file import (
    load_cluster_config,
    load_coordinator_config,
    set_oms_audit_key,
)
from mpcnode.ceremony.cluster_init import ClusterInitError, init_cluster
from mpcnode.core.config_schema import ConfigError

KEYS_FILE = "keys.json"  # label → key id (hex), kept beside cluster.toml
NODE_MODULE = "mpcnode"  # ``mpcnode serve``: the production daemon
TEST_NODE_MODULE = "test_only.node_daemon"  # TEST ONLY: honours node.toml's [testing]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pidfile(root: Path, i: int) -> Path:
    return root / f"node{i}" / "node.pid"


def _alive(pid: int) -> bool:
    # A node started by this very process (``up`` then ``down`` in one process) stays a
    # zombie, which kill(pid, 0) reports alive, until we reap it.
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its own parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def cmd_init(args: argparse.Namespace) -> int:
    layout = init_cluster(args.out, args.nodes, args.threshold, host=args.host,
                          base_port=args.base_port, metrics_base_port=args.metrics_base_port)
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
        if _read_pid(_pidfile(root, i)) is not None:
            _say(f"node {i}: already running")
            continue
        with (root / f"node{i}" / "node.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, "serve", "--config",
                 str(root / f"node{i}" / "node.toml")],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        _pidfile(root, i).write_text(f"{proc.pid}\n")
        _say(f"node {i}: started (pid {proc.pid}, log {root / f'node{i}' / 'node.log'})")
    with Coordinator(load_coordinator_config(root)) as coordinator:
        deadline = time.monotonic() + args.timeout
        while True:
            healthy = set(coordinator.healthy())
            _say(f"  healthy: {len(healthy)}/{len(cluster.nodes)}")
            if healthy == set(cluster.nodes):
                break
            dead = [i for i in cluster.nodes if _read_pid(_pidfile(root, i)) is None]
            if dead or time.monotonic() > deadline:
                why = f"nodes {dead} exited" if dead else f"not healthy after {args.timeout}s"
                _say(f"error: {why}; see the node logs")
                return 1
            time.sleep(0.5)
    _say("all nodes healthy")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    root: Path = args.dir
    cluster = load_cluster_config(root / "cluster.toml")
    for i in sorted(cluster.nodes):
        pid = _read_pid(_pidfile(root, i))
        if pid is None:
            _pidfile(root, i).unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _pidfile(root, i).unlink(missing_ok=True)
        _say(f"node {i}: stopped")
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
    print(f"  sessions: {v.sessions}, messages: {v.messages}, every signature and proof checked")
    print("  closing record signed by every node; node identity key fingerprints "
          "(compare them with what each operator reports):")
    for i, identity in sorted(t.identities.items()):
        print(f"    node {i}: {identity.fingerprint}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    root: Path = args.dir
    key_id = _key_id(root, args.key_id)
    config = load_coordinator_config(root)
    prior = transcript.load(root / "transcripts" / f"{args.key_id}.json")
    with Coordinator(config) as coordinator:
        result, records = coordinator.refresh(key_id, progress=_say)
        t = transcript.close(transcript.Transcript(
            prior.cluster_name, prior.threshold, prior.identities, prior.key_id,
            prior.public_key, prior.sessions + transcript.from_records(
                config.cluster, key_id, prior.public_key, records).sessions),
            coordinator.close_transcript(key_id))
    out = root / "transcripts" / f"{args.key_id}.json"
    transcript.write(out, t)
    _say(f"refreshed: epoch {result.epoch}, public key unchanged")
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
    args = ap.parse_args(argv)
    try:
        return int(args.fn(args))
    except transcript.TranscriptError as exc:
        print(f"transcript REJECTED: {exc}", file=sys.stderr)
        return 1
    except (CoordinatorError, ConfigError, ClusterInitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
