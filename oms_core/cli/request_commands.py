"""The request commands: ``oms submit``, ``confirm``, ``approve``, ``reject``, ``get`` and
``pending``. Before an assertion is made the client recomputes the request's challenge
from the transaction the server sent and prints what is being signed
(``client_challenge``), so a lying server cannot get a signature over something else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mpcnode.core.canonical_json import CanonicalJSONError, parse_json
from oms_core.cli.client_challenge import challenge_to_sign
from oms_core.cli.client_connection import open_client, relying_party, token_path
from oms_core.cli.client_output import print_json, print_request, request_dict
from oms_core.cli.exit_status import EXIT_OK
from oms_core.cli.option_values import address_arg, amount_arg, hex_arg
from oms_core.cli.token_file import load_token
from oms_core.rpc import oms_pb2 as pb
from zero_trust.signed_message import MessageError, personal_message, typed_data_message


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser],
             connect: argparse.ArgumentParser, authenticator: argparse.ArgumentParser
             ) -> None:
    submit = commands.add_parser("submit", parents=[connect], help="submit a request")
    submit.add_argument("--asset", default="", help="asset symbol from the policy")
    submit.add_argument("--amount", default="", help="whole units, e.g. 1.5")
    submit.add_argument("--to", default="", help="0x destination (token recipient)")
    submit.add_argument("--call-data", default="", help="0x… contract call data")
    submit.add_argument("--value", default="", help="ETH sent with a contract call")
    message = submit.add_mutually_exclusive_group()
    message.add_argument("--typed-data", type=Path, metavar="FILE",
                         help="sign EIP-712 typed data instead (eth_signTypedData_v4 JSON; "
                              "integers beyond 2^53 as decimal strings)")
    message.add_argument("--personal-message", metavar="TEXT",
                         help="sign an EIP-191 personal message (UTF-8 text) instead")
    submit.add_argument("--request-id", default="", help="idempotency key (default: new)")
    submit.set_defaults(handler=_submit)
    for name, doc, handler in (("confirm", "confirm your own request", _confirm),
                               ("approve", "approve someone else's request", _approve)):
        cmd = commands.add_parser(name, parents=[connect, authenticator], help=doc)
        cmd.add_argument("request_id")
        cmd.set_defaults(handler=handler)
    reject = commands.add_parser("reject", parents=[connect], help="reject a request")
    reject.add_argument("request_id")
    reject.add_argument("--reason", required=True)
    reject.set_defaults(handler=_reject)
    get = commands.add_parser("get", parents=[connect], help="show a request")
    get.add_argument("request_id")
    get.set_defaults(handler=_get)
    commands.add_parser("pending", parents=[connect], help="requests awaiting approval"
                        ).set_defaults(handler=_pending)


def _submit(args: argparse.Namespace) -> int:
    message = _message(args)
    if message:
        request = pb.SubmitRequest(client_request_id=args.request_id, message=message)
    else:
        missing = [f"--{n}" for n in ("asset", "amount", "to") if not getattr(args, n)]
        if missing:
            raise ValueError(f"submit needs {', '.join(missing)} (or --typed-data / "
                             "--personal-message)")
        call_data = hex_arg("--call-data", args.call_data) if args.call_data else b""
        request = pb.SubmitRequest(client_request_id=args.request_id, asset=args.asset,
                                   amount=amount_arg("--amount", args.amount),
                                   destination=address_arg("--to", args.to),
                                   call_data=call_data,
                                   value=amount_arg("--value", args.value) if args.value else "")
    with open_client(args) as client:
        view = client.submit(load_token(token_path(args)), request)
    print_request(view, args.json)
    if not args.json and view.challenge:
        print(f"next: oms confirm {view.request_id} --authenticator FILE", file=sys.stderr)
    return EXIT_OK


def _message(args: argparse.Namespace) -> bytes:
    """The canonical message of ``--typed-data`` / ``--personal-message`` (b"": none)."""
    if args.personal_message is not None:
        return personal_message(args.personal_message.encode("utf-8"))
    if args.typed_data is None:
        return b""
    if args.asset or args.amount or args.to or args.call_data or args.value:
        raise ValueError("--typed-data signs a message: leave out --asset, --amount, --to, "
                         "--call-data and --value")
    try:
        doc = parse_json(args.typed_data.read_bytes(), floats=False)
        return typed_data_message(doc)
    except OSError as exc:
        raise ValueError(f"--typed-data {args.typed_data}: cannot read: {exc.strerror}"
                         ) from None
    except (CanonicalJSONError, MessageError) as exc:
        raise ValueError(f"--typed-data {args.typed_data}: {exc}") from None


def _confirm(args: argparse.Namespace) -> int:
    return _assert_and_send(args, "confirm")


def _approve(args: argparse.Namespace) -> int:
    return _assert_and_send(args, "approve")


def _assert_and_send(args: argparse.Namespace, action: str) -> int:
    """Fetch the request, recompute its challenge, sign it with the authenticator, send."""
    # Imported here: a DEMO ONLY authenticator loads test_only, which `oms serve` refuses.
    from oms_core.cli.authenticator_file import load_authenticator, save_authenticator

    rp = relying_party(args)
    token = load_token(token_path(args))
    authenticator = load_authenticator(args.authenticator)
    with open_client(args) as client:
        to_sign = challenge_to_sign(client.get(token, args.request_id), args.request_id)
        print(f"{action} request {args.request_id}: {to_sign.describe()}", file=sys.stderr)
        assertion = authenticator.get_assertion(rp.rp_id, rp.origin, to_sign.challenge,
                                                authenticator.credential_id)
        save_authenticator(args.authenticator, authenticator)  # the counter moved on
        send = client.confirm if action == "confirm" else client.approve
        view = send(token, args.request_id, assertion.to_json())
    print_request(view, args.json)
    return EXIT_OK


def _reject(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        view = client.reject(load_token(token_path(args)), args.request_id, args.reason)
    print_request(view, args.json)
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        view = client.get(load_token(token_path(args)), args.request_id)
    print_request(view, args.json)
    return EXIT_OK


def _pending(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        views = client.pending(load_token(token_path(args)))
    if args.json:
        print_json([request_dict(v) for v in views])
        return EXIT_OK
    if not views:
        print("no request awaits approval")
    for v in views:
        print(f"{v.request_id}  {v.amount} base units of {v.asset} to {v.destination} "
              f"({v.usd_amount} USD) by {v.initiator}; rule {v.rule}; needs "
              f"{', '.join(v.required) or '-'}; approved by {', '.join(v.approved_by) or '-'}")
    return EXIT_OK
