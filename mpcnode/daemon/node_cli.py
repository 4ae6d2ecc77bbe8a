"""``mpcnode``: the signer node daemon's command line.

    mpcnode serve --config node.toml
    mpcnode fingerprint --config node.toml   the identity key fingerprint, for auditors
    mpcnode seal-init --config node.toml --passphrase-file FILE | --passphrase-env VAR
        on the node's host: create its KEK in the token node.toml names (kind = "pkcs11")
        and reseal its identity key, made under the ceremony's passphrase, with it

The seal passphrase comes from the file or environment variable named in node.toml,
never from the command line. This entry point honours no test switch: it refuses a
node.toml with a ``[testing]`` section, and refuses to run if the ``test_only`` package
is loaded (tests start such nodes with ``python -m test_only.node_daemon``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mpcnode.ceremony.node_config import (
    load_identity_keys,
    load_node_config,
    move_identity_into_token,
)
from mpcnode.core.config_schema import ConfigError
from mpcnode.daemon.production_fence import FenceError, refuse_test_only
from mpcnode.state.node_store import StoreError
from mpcnode.state.schema_migrations import SchemaError
from mpcnode.state.seal import SealError, passphrase_from_env_or_file
from mpcnode.transport.identity import IdentityError
from mpcnode.transport.net_address import ListenError


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
        refuse_test_only("mpcnode serve")
        cfg = load_node_config(args.config)
        from mpcnode.daemon.node_server import serve as run

        return run(cfg)
    except (ConfigError, FenceError, SealError, IdentityError, SchemaError, ListenError,
            StoreError) as exc:  # StoreError: key material that fails its start-up check
        print(f"mpcnode: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
