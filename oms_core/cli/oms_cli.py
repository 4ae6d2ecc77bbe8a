"""``oms``: the OMS daemon, its set-up, and a command-line client of its gRPC service.

    oms init --cluster DIR --key-id HEX --out DIR [...]   a new instance directory
    oms serve --config oms.toml                          run the service (SIGTERM stops it)
    oms login --user U --authenticator FILE              session token into --token-file
    oms logout
    oms submit --asset ETH --amount 1.5 --to 0x…         a transfer request
    oms confirm ID --authenticator FILE                  the initiator's own assertion
    oms approve ID --authenticator FILE                  an approver's assertion
    oms reject ID --reason TEXT
    oms get ID | oms pending
    oms policy propose FILE.toml | get | approve HASH --admin-key FILE
    oms address-book add --label L --address 0x… --kind wallet|contract [--selector 0x…]
    oms audit …                                          offline audit checks (--db)
    oms risk report --config oms.toml [--json]           the scenario table

Client commands find the server through --server/--ca, or read both (and the WebAuthn
relying party) from --config. Before an assertion is made the client recomputes its
challenge from the transaction the server sent and prints what is being signed
(``client_challenge``). An authenticator FILE is a DEMO ONLY software authenticator
(``test_only``): only the commands that use one import it, since ``oms serve`` refuses to
run with that package loaded.
Admin keys sign policy changes locally: they never leave this machine.

Exit status: 0 done; 1 the OMS refused or failed (its one-line message on stderr, e.g.
``PolicyDenied: rule "trader-daily": …``); 2 the command could not run (arguments, files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import secrets
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.core.production_fence import refuse_test_only
from mpcnode.transport.net_address import parse_address
from oms_core.app.bundle_signing import load_admin_key
from oms_core.app.oms_config import ConfigError, OmsSettings, load_settings
from oms_core.audit import audit_cli
from oms_core.audit.audit_errors import AuditError
from oms_core.audit.signing_key import key_fingerprint, load_public_key
from oms_core.cli.client_challenge import ChallengeCheckError, challenge_to_sign
from oms_core.cli.instance_setup import (
    DEMO_RP,
    InitOptions,
    SetupError,
    init_instance,
    parse_person,
)
from oms_core.cli.oms_client import DEFAULT_TIMEOUT_S, OmsCallError, OmsClient
from oms_core.cli.token_file import (
    TokenFileError,
    default_token_path,
    load_token,
    remove_token,
    save_token,
)
from oms_core.daemon.tls_certificate import CertificateError
from oms_core.risk import RiskConfigError, risk_report
from oms_core.risk.live_risk import NoPolicyError, active_policy, live_risk_config
from oms_core.rpc import oms_pb2 as pb
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.authorization import RelyingParty
from zero_trust.policy.bundle import signed_message
from zero_trust.policy.policy_errors import PolicyError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
DEFAULT_SERVER = "127.0.0.1:7600"
_BUNDLE_HASH = re.compile(r"[0-9a-f]{64}")
Handler = Callable[[argparse.Namespace], int]

_LOCAL_ERRORS: tuple[type[Exception], ...] = (
    TokenFileError, ConfigError, SetupError, ApprovalError, AuditError, PolicyError,
    NoPolicyError, RiskConfigError, CertificateError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (OmsCallError, ChallengeCheckError) as exc:
        return _fail(str(exc) if isinstance(exc, OmsCallError) else _named(exc), EXIT_REFUSED)
    except _LOCAL_ERRORS as exc:
        return _fail(_named(exc), EXIT_UNUSABLE)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"oms: cannot use{where}: {exc.strerror or exc}", EXIT_UNUSABLE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    connect, authenticator = _client_options(), _authenticator_options()
    _add_init(commands)
    demo = commands.add_parser("demo", help="the whole system on embedded defaults: a 3-of-5 "
                               "cluster, the ceremony and the article's DeFi scenario")
    demo.add_argument("--json", action="store_true", help="print one JSON object last")
    demo.add_argument("--dir", type=Path, default=None,
                      help="keep the cluster and OMS files here (default: a temporary dir)")
    demo.set_defaults(handler=_demo)
    serve = commands.add_parser("serve", help="run the OMS gRPC service")
    serve.add_argument("--config", type=Path, required=True, help="oms.toml")
    serve.set_defaults(handler=_serve)

    login = commands.add_parser("login", parents=[connect, authenticator],
                                help="log in with a WebAuthn assertion")
    login.add_argument("--user", required=True, help="user id")
    login.set_defaults(handler=_login)
    commands.add_parser("logout", parents=[connect], help="end the session"
                        ).set_defaults(handler=_logout)

    submit = commands.add_parser("submit", parents=[connect], help="submit a request")
    submit.add_argument("--asset", required=True, help="asset symbol from the policy")
    submit.add_argument("--amount", required=True, help="whole units, e.g. 1.5")
    submit.add_argument("--to", required=True, help="0x destination (token recipient)")
    submit.add_argument("--call-data", default="", help="0x… contract call data")
    submit.add_argument("--value", default="", help="ETH sent with a contract call")
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
    _add_policy(commands, connect)
    _add_address_book(commands, connect)
    audit_cli.register(commands)
    risk = commands.add_parser("risk", help="risk report of the live configuration")
    risk_commands = risk.add_subparsers(dest="risk_command", required=True)
    report = risk_commands.add_parser("report", help="print the scenario table")
    report.add_argument("--config", type=Path, required=True, help="oms.toml")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_risk_report)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from oms_core.demo import oms_demo as demo

    return demo.main(bool(args.json), args.dir)


def _client_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", type=Path, help="oms.toml: server, CA and relying party")
    p.add_argument("--server", help=f"host:port (default: from --config, else {DEFAULT_SERVER})")
    p.add_argument("--ca", type=Path, help="CA certificate (PEM) the server must chain to "
                                           "(default: from --config; none: plaintext, "
                                           "loopback only)")
    p.add_argument("--token-file", type=Path, help=f"default {default_token_path()}")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _authenticator_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--authenticator", type=Path, required=True,
                   help="DEMO ONLY software authenticator state file")
    p.add_argument("--rp-id", help="WebAuthn relying party id (default: from --config)")
    p.add_argument("--origin", help="web origin this client acts as (default: from --config)")
    return p


def _add_init(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_policy(commands: argparse._SubParsersAction[argparse.ArgumentParser],
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


def _add_address_book(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                      connect: argparse.ArgumentParser) -> None:
    book = commands.add_parser("address-book", help="address-book changes")
    actions = book.add_subparsers(dest="book_command", required=True)
    add = actions.add_parser("add", parents=[connect],
                             help="propose an entry (admin quorum, then a cool-down)")
    add.add_argument("--label", required=True)
    add.add_argument("--address", required=True, help="0x address")
    add.add_argument("--kind", required=True, choices=("wallet", "contract"))
    add.add_argument("--selector", action="append", default=[],
                     help="allowed function selector 0x… (contracts; repeatable)")
    add.add_argument("--protocol", default="", help="protocol name (circuit breakers)")
    add.set_defaults(handler=_address_book_add)


# --- local commands --------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    options = InitOptions(
        out=args.out, cluster_dir=args.cluster, key_id=_hex_arg("--key-id", args.key_id),
        listen=args.listen, rp=RelyingParty(args.rp_id, args.origin),
        prices=_prices(args.price) if args.price else {"ETH": Decimal(2000)},
        tls=not args.no_tls, tls_hosts=tuple(args.tls_host), policy_file=args.policy,
        demo_people=tuple(parse_person(p) for p in args.demo_person),
        wallet_value_usd=_usd("--wallet-value-usd", args.wallet_value_usd))
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


def _serve(args: argparse.Namespace) -> int:
    refuse_test_only("oms serve")  # the demo may use test_only; the daemon never
    from oms_core.daemon.runtime import StartupError, serve

    try:
        return serve(load_settings(args.config))
    except StartupError as exc:
        return _fail(_named(exc), EXIT_REFUSED)


def _risk_report(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    cluster = load_cluster_config(settings.cluster_dir / "cluster.toml")
    report = risk_report(live_risk_config(settings, cluster, active_policy(settings)))
    if args.json:
        print(report.to_json())
    else:
        print(report.to_text(), end="")
    return EXIT_OK


# --- client commands -------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    from oms_core.cli.authenticator_file import load_authenticator, save_authenticator

    rp = _relying_party(args)
    authenticator = load_authenticator(args.authenticator)
    with _client(args) as client:
        challenge = client.login_begin(args.user)
        assertion = authenticator.get_assertion(rp.rp_id, rp.origin, challenge,
                                                authenticator.credential_id)
        save_authenticator(args.authenticator, authenticator)  # the counter moved on
        resp = client.login_finish(args.user, assertion.to_json())
    path = _token_path(args)
    save_token(path, resp.token)
    if args.json:
        _print_json({"user": args.user, "idle_expires_at": resp.idle_expires_at,
                     "absolute_expires_at": resp.absolute_expires_at, "token_file": str(path)})
    else:
        print(f"logged in as {args.user} (token in {path}); the session ends after "
              f"{_when(resp.idle_expires_at)} if idle, at {_when(resp.absolute_expires_at)} "
              "at the latest")
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    path = _token_path(args)
    with _client(args) as client:
        client.logout(load_token(path))
    remove_token(path)
    print("logged out")
    return EXIT_OK


def _submit(args: argparse.Namespace) -> int:
    call_data = _hex_arg("--call-data", args.call_data) if args.call_data else b""
    request = pb.SubmitRequest(client_request_id=args.request_id, asset=args.asset,
                               amount=args.amount, destination=args.to, call_data=call_data,
                               value=args.value)
    with _client(args) as client:
        view = client.submit(load_token(_token_path(args)), request)
    _print_request(view, args.json)
    if not args.json and view.challenge:
        print(f"next: oms confirm {view.request_id} --authenticator FILE", file=sys.stderr)
    return EXIT_OK


def _confirm(args: argparse.Namespace) -> int:
    return _assert_and_send(args, "confirm")


def _approve(args: argparse.Namespace) -> int:
    return _assert_and_send(args, "approve")


def _assert_and_send(args: argparse.Namespace, action: str) -> int:
    """Fetch the request, recompute its challenge, sign it with the authenticator, send."""
    from oms_core.cli.authenticator_file import load_authenticator, save_authenticator

    rp = _relying_party(args)
    token = load_token(_token_path(args))
    authenticator = load_authenticator(args.authenticator)
    with _client(args) as client:
        to_sign = challenge_to_sign(client.get(token, args.request_id), args.request_id)
        print(f"{action} request {args.request_id}: {to_sign.describe()}", file=sys.stderr)
        assertion = authenticator.get_assertion(rp.rp_id, rp.origin, to_sign.challenge,
                                                authenticator.credential_id)
        save_authenticator(args.authenticator, authenticator)  # the counter moved on
        send = client.confirm if action == "confirm" else client.approve
        view = send(token, args.request_id, assertion.to_json())
    _print_request(view, args.json)
    return EXIT_OK


def _reject(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.reject(load_token(_token_path(args)), args.request_id, args.reason)
    _print_request(view, args.json)
    return EXIT_OK


def _pause(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.pause_protocol(load_token(_token_path(args)), args.protocol, args.reason)
    print(f"protocol {args.protocol} paused")
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.resume_protocol(load_token(_token_path(args)), args.protocol, args.reason)
    print(f"protocol {args.protocol} resumed")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    with _client(args) as client:
        views = client.emergency_sweep(load_token(_token_path(args)))
    for v in views:
        _print_request(v, args.json)
    return EXIT_OK


def _replace(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.replace_stuck(load_token(_token_path(args)), args.request_id)
    _print_request(view, args.json)
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.get(load_token(_token_path(args)), args.request_id)
    _print_request(view, args.json)
    return EXIT_OK


def _pending(args: argparse.Namespace) -> int:
    with _client(args) as client:
        views = client.pending(load_token(_token_path(args)))
    if args.json:
        _print_json([_request_dict(v) for v in views])
        return EXIT_OK
    if not views:
        print("no request awaits approval")
    for v in views:
        print(f"{v.request_id}  {v.amount} base units of {v.asset} to {v.destination} "
              f"({v.usd_amount} USD) by {v.initiator}; rule {v.rule}; needs "
              f"{', '.join(v.required) or '-'}; approved by {', '.join(v.approved_by) or '-'}")
    return EXIT_OK


def _policy_propose(args: argparse.Namespace) -> int:
    text = args.file.read_text(encoding="utf-8")
    with _client(args) as client:
        view = client.propose_policy(load_token(_token_path(args)), text)
    _print_proposal(view, args.json)
    return EXIT_OK


def _policy_approve(args: argparse.Namespace) -> int:
    if not _BUNDLE_HASH.fullmatch(args.bundle_hash):
        raise ValueError(f"{args.bundle_hash!r} is not a bundle hash (64 lower-case hex)")
    signature = load_admin_key(args.admin_key).sign(signed_message(args.bundle_hash))
    with _client(args) as client:
        view = client.approve_policy(load_token(_token_path(args)), args.bundle_hash,
                                     signature)
    _print_proposal(view, args.json)
    return EXIT_OK


def _policy_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        view = client.policy(load_token(_token_path(args)))
    if args.json:
        _print_json({"bundle_hash": view.bundle_hash, "version": view.version,
                     "policy": json.loads(view.policy_json),
                     "pending": [_proposal_dict(p) for p in view.pending]})
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
    request = pb.AddressBookAddRequest(label=args.label, address=args.address, kind=args.kind,
                                       allowed_selectors=args.selector,
                                       protocol=args.protocol)
    with _client(args) as client:
        view = client.add_address(load_token(_token_path(args)), request)
    _print_proposal(view, args.json)
    return EXIT_OK


# --- helpers ---------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> OmsSettings | None:
    return load_settings(args.config) if getattr(args, "config", None) else None


def _client(args: argparse.Namespace) -> OmsClient:
    settings = _settings(args)
    server = args.server
    if server is None and settings is not None:
        host, port = parse_address(settings.listen)
        server = f"127.0.0.1:{port}" if host in ("0.0.0.0", "::") else settings.listen
    ca_path = args.ca or (settings.tls.ca if settings and settings.tls else None)
    return OmsClient(server or DEFAULT_SERVER,
                     ca_pem=ca_path.read_bytes() if ca_path is not None else None,
                     timeout=args.timeout)


def _relying_party(args: argparse.Namespace) -> RelyingParty:
    settings = _settings(args)
    default = settings.rp if settings is not None else DEMO_RP
    return RelyingParty(args.rp_id or default.rp_id, args.origin or default.origin)


def _token_path(args: argparse.Namespace) -> Path:
    path: Path = args.token_file or default_token_path()
    return path


def _hex_arg(option: str, text: str) -> bytes:
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not hex") from None


def _usd(option: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{option} must be a non-negative number")
    return value


def _prices(items: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in items:
        symbol, sep, price = item.partition("=")
        if not sep or not symbol:
            raise ValueError(f"--price {item!r} must be SYMBOL=USD")
        out[symbol] = _usd(f"--price {symbol}", price)
    return out


def _request_dict(v: pb.RequestView) -> dict[str, object]:
    return {"request_id": v.request_id, "state": v.state, "initiator": v.initiator,
            "asset": v.asset, "amount": v.amount, "destination": v.destination,
            "usd_amount": v.usd_amount, "rule": v.rule, "reason": v.reason,
            "policy_hash": v.policy_hash, "challenge": v.challenge.hex(),
            "approved_by": list(v.approved_by), "required": list(v.required),
            "transaction": "0x" + v.transaction.hex(),
            "signed_transaction": "0x" + v.signed_transaction.hex()
            if v.signed_transaction else "", "tx_hash": v.tx_hash}


def _print_request(v: pb.RequestView, as_json: bool) -> None:
    if as_json:
        _print_json(_request_dict(v))
        return
    rows = [("request", v.request_id), ("state", v.state), ("initiator", v.initiator),
            ("amount", f"{v.amount} base units of {v.asset}"), ("to", v.destination),
            ("usd", v.usd_amount), ("rule", v.rule), ("reason", v.reason),
            ("needs", ", ".join(v.required)), ("approved by", ", ".join(v.approved_by)),
            ("challenge", v.challenge.hex()), ("tx hash", v.tx_hash),
            ("signed tx", "0x" + v.signed_transaction.hex() if v.signed_transaction else "")]
    for key, value in rows:
        if value:
            print(f"{key:<12}{value}")


def _proposal_dict(p: pb.ProposalView) -> dict[str, object]:
    return {"bundle_hash": p.bundle_hash, "version": p.version, "signed_by": list(p.signed_by),
            "quorum": p.quorum, "active": p.active, "summary": p.summary}


def _print_proposal(p: pb.ProposalView, as_json: bool) -> None:
    if as_json:
        _print_json(_proposal_dict(p))
        return
    status = "ACTIVE" if p.active else f"pending ({len(p.signed_by)} of {p.quorum} admins)"
    print(f"policy v{p.version} {p.bundle_hash}: {p.summary}; {status}; signed by "
          f"{', '.join(p.signed_by) or 'nobody'}")
    if not p.active:
        print(f"next: each admin runs oms policy approve {p.bundle_hash} --admin-key FILE",
              file=sys.stderr)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _named(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".splitlines())


def _fail(message: str, status: int) -> int:
    print(message, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
