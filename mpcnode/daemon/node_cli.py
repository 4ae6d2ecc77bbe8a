"""``mpcnode``: the signer node daemon's command line.

    mpcnode serve --config node.toml
    mpcnode fingerprint --config node.toml   the identity key fingerprint, for auditors
    mpcnode seal-init --config node.toml --passphrase-file FILE | --passphrase-env VAR
        on the node's host: create its KEK in the token node.toml names (kind = "pkcs11")
        and reseal its identity key, made under the ceremony's passphrase, with it
    mpcnode witness-pin --config node.toml HEAD.json
                                             start witnessing the OMS audit log from a head
                                             the auditors hold (node stopped, no head yet)

The seal passphrase comes from the file or environment variable named in node.toml,
never from the command line. This entry point honours no test switch: it refuses a
node.toml with a ``[testing]`` section, and refuses to run if the ``test_only`` package
is loaded (tests start such nodes with ``python -m test_only.node_daemon``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.node_config import (
    NodeConfig,
    load_identity_keys,
    load_node_config,
    move_identity_into_token,
)
from mpcnode.core.config_schema import ConfigError
from mpcnode.daemon.production_fence import FenceError, refuse_test_only
from mpcnode.state.audit_witness_state import AuditWitnessState, WitnessStateError
from mpcnode.state.node_store import StoreError
from mpcnode.state.schema_migrations import SchemaError
from mpcnode.state.seal import SealError, passphrase_from_env_or_file
from mpcnode.transport.identity import IdentityError
from mpcnode.transport.net_address import ListenError
from zero_trust.audit_tree.audit_tree_errors import AuditTreeError
from zero_trust.audit_tree.tree_head import SignedTreeHead


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mpcnode", description="threshold-ECDSA signer node")
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the signer node daemon")
    serve.add_argument("--config", type=Path, required=True, help="path to node.toml")
    fingerprint = sub.add_parser(
        "fingerprint", help="print the fingerprint of this node's own identity key, which "
                            "`mpc-ceremony verify` prints for the transcript's")
    fingerprint.add_argument("--config", type=Path, required=True, help="path to node.toml")
    seal_init = sub.add_parser(
        "seal-init", help="create this node's key-encryption key in its PKCS#11 token and "
                          "move its identity key under it (before the node's first start)")
    seal_init.add_argument("--config", type=Path, required=True, help="path to node.toml")
    source = seal_init.add_mutually_exclusive_group(required=True)
    source.add_argument("--passphrase-file", type=Path,
                        help="the ceremony's passphrase file for this node (0600)")
    source.add_argument("--passphrase-env", help="environment variable holding it")
    pin = sub.add_parser(
        "witness-pin", help="pin the first OMS audit tree head this node witnesses (instead "
                            "of trusting the first one a sign request brings)")
    pin.add_argument("--config", type=Path, required=True, help="path to node.toml")
    pin.add_argument("head", type=Path, help="a signed tree head JSON (oms audit head)")
    args = ap.parse_args(argv)
    try:
        if args.command == "seal-init":
            cfg = load_node_config(args.config)
            move_identity_into_token(cfg, passphrase_from_env_or_file(
                args.passphrase_env, args.passphrase_file))
            assert cfg.pkcs11 is not None
            print(f"node {cfg.node_id}: {cfg.pkcs11.where()} created; {cfg.identity_key} "
                  "is sealed by it (the passphrase file can be destroyed)")
            return 0
        if args.command == "fingerprint":
            cfg = load_node_config(args.config)
            print(f"node {cfg.node_id}: {load_identity_keys(cfg).public.fingerprint}")
            return 0
        if args.command == "witness-pin":
            return _witness_pin(load_node_config(args.config), args.head)
        refuse_test_only("mpcnode serve")
        cfg = load_node_config(args.config)
        from mpcnode.daemon.node_server import serve as run

        return run(cfg)
    except (ConfigError, FenceError, SealError, IdentityError, SchemaError, ListenError,
            AuditTreeError, WitnessStateError,
            StoreError) as exc:  # StoreError: key material that fails its start-up check
        print(f"mpcnode: {exc}", file=sys.stderr)
        return 2


def _witness_pin(cfg: NodeConfig, path: Path) -> int:
    """Write the pinned head into the node's witness state (read when the node starts)."""
    cluster = load_cluster_config(cfg.cluster_file)
    if cluster.audit_key is None:
        raise ConfigError(cfg.cluster_file, "audit.oms_public_key",
                          "not set: this cluster witnesses no audit log")
    try:
        head = SignedTreeHead.from_json_object(json.loads(path.read_bytes()))
    except OSError as exc:
        raise ConfigError(path, "(file)", f"cannot read: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(path, "(file)", "not JSON") from None
    state = AuditWitnessState(cfg.data_dir, cluster.audit_key, cluster.audit_max_head_age_s)
    written = state.pin(head)
    print(f"node {cfg.node_id}: {'pinned' if written else 'already holds'} the audit tree head "
          f"of log {head.log_id!r}, {head.tree_size} entries, root {head.root_hash.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
