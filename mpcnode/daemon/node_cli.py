"""``mpcnode``: the signer node daemon's command line.

    mpcnode serve --config node.toml
    mpcnode fingerprint --config node.toml   the identity key fingerprint, for auditors

The seal passphrase comes from the file or environment variable named in node.toml,
never from the command line. This entry point honours no test switch: it refuses a
node.toml with a ``[testing]`` section, and refuses to run if the ``test_only`` package
is loaded (tests start such nodes with ``python -m test_only.node_daemon``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mpcnode.ceremony.node_config import load_identity_keys, load_node_config
from mpcnode.core.config_schema import ConfigError
from mpcnode.daemon.production_fence import FenceError, refuse_test_only
from mpcnode.state.node_store import StoreError
from mpcnode.state.schema_migrations import SchemaError
from mpcnode.state.seal import SealError
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
    args = ap.parse_args(argv)
    try:
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
