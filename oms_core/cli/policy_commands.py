"""``oms policy propose|approve|get`` and ``oms address-book add``. A change is a proposal
until the admin quorum has signed its bundle hash; admin keys sign here, locally, and
never leave this machine."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from oms_core.app.bundle_signing import load_admin_key
from oms_core.cli.client_connection import open_client, token_path
from oms_core.cli.client_output import print_json, print_proposal, proposal_dict
from oms_core.cli.exit_status import EXIT_OK
from oms_core.cli.option_values import address_arg, read_input, read_text_input
from oms_core.cli.token_file import load_token
from oms_core.rpc import oms_pb2 as pb
from zero_trust.policy.bundle import signed_message

_BUNDLE_HASH = re.compile(r"[0-9a-f]{64}")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             connect: argparse.ArgumentParser) -> None:
    policy = commands.add_parser("policy", help="policy proposals and approvals")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    propose = actions.add_parser("propose", parents=[connect], help="propose a new policy")
    propose.add_argument("file", type=Path, help="the whole new policy (TOML)")
    propose.set_defaults(handler=_policy_propose)
    approve = actions.add_parser("approve", parents=[connect],
                                 help="sign a proposal with your admin key")
    approve.add_argument("bundle_hash")
    approve.add_argument("--admin-key", type=Path, required=True,
                         help="your Ed25519 admin key (PEM); it never leaves this machine")
    approve.set_defaults(handler=_policy_approve)
    actions.add_parser("get", parents=[connect], help="the active policy and proposals"
                       ).set_defaults(handler=_policy_get)

    book = commands.add_parser("address-book", help="address-book changes")
    book_actions = book.add_subparsers(dest="book_command", required=True)
    add = book_actions.add_parser("add", parents=[connect],
                                  help="propose an entry (admin quorum, then a cool-down)")
    add.add_argument("--label", required=True)
    add.add_argument("--address", required=True, help="0x address")
    add.add_argument("--kind", required=True, choices=("wallet", "contract"))
    add.add_argument("--selector", action="append", default=[],
                     help="allowed function selector 0x… (contracts; repeatable)")
    add.add_argument("--protocol", default="", help="protocol name (circuit breakers)")
    add.set_defaults(handler=_address_book_add)


def _policy_propose(args: argparse.Namespace) -> int:
    text = read_text_input("policy file", args.file)
    with open_client(args) as client:
        view = client.propose_policy(load_token(token_path(args)), text)
    print_proposal(view, args.json)
    return EXIT_OK


def _policy_approve(args: argparse.Namespace) -> int:
    if not _BUNDLE_HASH.fullmatch(args.bundle_hash):
        raise ValueError(f"{args.bundle_hash!r} is not a bundle hash (64 lower-case hex)")
    # The signing time goes inside the signature: the nodes start a new address-book
    # entry's cool-down at it, so the OMS that relays the signature cannot move it.
    signed_at = int(time.time())
    key = load_admin_key(args.admin_key, read_input("--admin-key", args.admin_key))
    signature = key.sign(signed_message(args.bundle_hash, signed_at))
    with open_client(args) as client:
        view = client.approve_policy(load_token(token_path(args)), args.bundle_hash,
                                     signature, signed_at)
    print_proposal(view, args.json)
    return EXIT_OK


def _policy_get(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        view = client.policy(load_token(token_path(args)))
    if args.json:
        print_json({"bundle_hash": view.bundle_hash, "version": view.version,
                    "policy": json.loads(view.policy_json),
                    "pending": [proposal_dict(p) for p in view.pending]})
        return EXIT_OK
    name = json.loads(view.policy_json).get("name", "?")
    print(f'active policy "{name}" v{view.version}, bundle {view.bundle_hash}')
    for p in view.pending:
        print(f"pending v{p.version} {p.bundle_hash}: {p.summary} (signed by "
              f"{', '.join(p.signed_by) or 'nobody'}; {len(p.signed_by)} of {p.quorum})")
    if not view.pending:
        print("no pending proposal")
    return EXIT_OK


def _address_book_add(args: argparse.Namespace) -> int:
    request = pb.AddressBookAddRequest(label=args.label,
                                       address=address_arg("--address", args.address),
                                       kind=args.kind, allowed_selectors=args.selector,
                                       protocol=args.protocol)
    with open_client(args) as client:
        view = client.add_address(load_token(token_path(args)), request)
    print_proposal(view, args.json)
    return EXIT_OK
