"""``oms init``: a new OMS instance directory (``instance_setup``) for a cluster's key."""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path

from oms_core.audit.signing_key import key_fingerprint, load_public_key
from oms_core.cli.client_connection import DEFAULT_SERVER
from oms_core.cli.exit_status import EXIT_OK
from oms_core.cli.instance_setup import DEMO_RP, InitOptions, init_instance, parse_person
from oms_core.cli.option_values import hex_arg, price_args, usd_arg
from zero_trust.authorization import RelyingParty


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = commands.add_parser("init", help="write a new OMS instance directory")
    init.add_argument("--cluster", type=Path, required=True, help="the cluster directory")
    init.add_argument("--key-id", required=True, help="threshold key id (hex)")
    init.add_argument("--out", type=Path, required=True, help="new instance directory")
    init.add_argument("--listen", default=DEFAULT_SERVER, help="host:port to serve on")
    init.add_argument("--rp-id", default=DEMO_RP.rp_id)
    init.add_argument("--origin", default=DEMO_RP.origin)
    init.add_argument("--price", action="append", default=[], metavar="SYMBOL=USD",
                      help="fixed USD price (repeatable; default ETH=2000)")
    init.add_argument("--no-tls", action="store_true",
                      help="plaintext on a loopback address (local demo only)")
    init.add_argument("--tls-host", action="append", default=[],
                      help="another host name for the certificate (repeatable)")
    init.add_argument("--policy", type=Path, help="DEMO bootstrap policy (default: example)")
    init.add_argument("--demo-person", action="append", default=[], metavar="USER:ROLES",
                      help="DEMO ONLY: enrol a software authenticator (repeatable)")
    init.add_argument("--wallet-value-usd", default="0",
                      help="what the threshold key controls (risk report)")
    init.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    options = InitOptions(
        out=args.out, cluster_dir=args.cluster, key_id=hex_arg("--key-id", args.key_id),
        listen=args.listen, rp=RelyingParty(args.rp_id, args.origin),
        prices=price_args(args.price) if args.price else {"ETH": Decimal(2000)},
        tls=not args.no_tls, tls_hosts=tuple(args.tls_host), policy_file=args.policy,
        demo_people=tuple(parse_person(p) for p in args.demo_person),
        wallet_value_usd=usd_arg("--wallet-value-usd", args.wallet_value_usd))
    settings = init_instance(options, random_bytes=secrets.token_bytes,
                             now=dt.datetime.now(dt.UTC))
    print(f"wrote {settings.path}")
    print(f"audit public key {settings.audit_public_key} "
          f"(sha256:{key_fingerprint(load_public_key(settings.audit_public_key))})")
    print(f"TLS certificate {settings.tls.cert}" if settings.tls else
          f"no TLS: plaintext on {settings.listen} (loopback only)")
    if settings.bootstrap_bundle is not None:
        print(f"DEMO ONLY software authenticators in {settings.path.parent / 'people'}; "
              f"bootstrap policy bundle {settings.bootstrap_bundle}")
    return EXIT_OK
