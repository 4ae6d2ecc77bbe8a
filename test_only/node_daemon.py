"""TEST ONLY: a signer node that honours node.toml's ``[testing]`` section.

    python -m test_only.node_daemon serve --config node.toml

The production server (``mpcnode.daemon.node_server``) with the hooks of the active
switches injected: the crash hook, bare-digest signing, TEST MATERIAL primes. The node
logs a warning line per active switch at start and reports the switches in ``Info``
(``test_switches``). ``mpcnode serve`` refuses such a config and refuses to run beside
this package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from mpcnode.ceremony.node_config import NodeConfig
from mpcnode.core.config_schema import ConfigError
from mpcnode.daemon.node import SignerNode
from mpcnode.daemon.node_server import NodeHooks, running_server, serve
from mpcnode.state.node_store import NodeStore, StoreError
from mpcnode.state.seal import SealError
from mpcnode.transport.identity import IdentityError
from test_only.bare_digest_signing import sign_bare_digest
from test_only.crash_hook import crash
from test_only.node_switches import NodeSwitches, load_test_node_config
from test_only.public_primes import public_pool_primes

PROGRAM = "python -m test_only.node_daemon"


def node_hooks(cfg: NodeConfig, switches: NodeSwitches) -> NodeHooks:
    """The production server's injection points, filled in for the active switches."""
    primes = None
    if switches.allow_test_primes:
        if cfg.prime_pool is None:
            raise ConfigError(cfg.path, "testing.allow_test_primes",
                              "needs a [primes] pool to allow")
        primes = public_pool_primes(cfg.prime_pool)
    return NodeHooks(
        switches=switches.active,
        after_consume=crash if switches.crash_after_consume else None,
        unauthorized=sign_bare_digest if switches.sign_unauthorized_digests else None,
        primes=primes,
    )


@contextmanager
def running_test_node(config: Path) -> Iterator[tuple[grpc.Server, SignerNode, NodeStore]]:
    """The node of ``config`` served in this process, its test switches on (for tests
    that need the node object itself)."""
    cfg, switches = load_test_node_config(config)
    with running_server(cfg, node_hooks(cfg, switches)) as served:
        yield served


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=PROGRAM, description="TEST ONLY signer node: honours "
                                 "node.toml's [testing] section")
    sub = ap.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the signer node daemon with its test switches")
    serve_cmd.add_argument("--config", type=Path, required=True, help="path to node.toml")
    args = ap.parse_args(argv)
    try:
        cfg, switches = load_test_node_config(args.config)
        return serve(cfg, node_hooks(cfg, switches))
    except (ConfigError, SealError, IdentityError, StoreError) as exc:
        print(f"{PROGRAM}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
