"""A risk officer's commands: ``oms protocol pause|resume`` (circuit breakers), ``oms sweep``
(every balance to the holding address) and ``oms replace`` (a stuck broadcast transaction
again with higher fees)."""

from __future__ import annotations

import argparse

from oms_core.cli.client_connection import open_client, token_path
from oms_core.cli.client_output import print_request
from oms_core.cli.exit_status import EXIT_OK
from oms_core.cli.token_file import load_token


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             connect: argparse.ArgumentParser) -> None:
    protocol = commands.add_parser("protocol", help="circuit breakers (risk officer)")
    protocol_commands = protocol.add_subparsers(dest="protocol_command", required=True)
    for name, doc, handler in (("pause", "stop every request touching a protocol", _pause),
                               ("resume", "lift a pause", _resume)):
        cmd = protocol_commands.add_parser(name, parents=[connect], help=doc)
        cmd.add_argument("protocol")
        cmd.add_argument("--reason", required=True)
        cmd.set_defaults(handler=handler)
    commands.add_parser("sweep", parents=[connect], help="emergency sweep of every balance "
                        "to the holding address (risk officer; each transfer needs its rule's "
                        "approvals)").set_defaults(handler=_sweep)
    replace = commands.add_parser("replace", parents=[connect],
                                  help="replace a stuck broadcast transaction (fees +12.5 %%)")
    replace.add_argument("request_id")
    replace.set_defaults(handler=_replace)


def _pause(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.pause_protocol(load_token(token_path(args)), args.protocol, args.reason)
    print(f"protocol {args.protocol} paused")
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.resume_protocol(load_token(token_path(args)), args.protocol, args.reason)
    print(f"protocol {args.protocol} resumed")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        views = client.emergency_sweep(load_token(token_path(args)))
    for v in views:
        print_request(v, args.json)
    return EXIT_OK


def _replace(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        view = client.replace_stuck(load_token(token_path(args)), args.request_id)
    print_request(view, args.json)
    return EXIT_OK
