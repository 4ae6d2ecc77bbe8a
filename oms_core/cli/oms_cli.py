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
    oms anchor new-key | deploy                          the on-chain audit anchor's set-up
    oms risk report --config oms.toml [--json]           the scenario table
    oms resolve ID --as confirmed|failed --reason T --operator NAME [--config oms.toml]
                                                         settle an in-flight request (audited)

Client commands find the server through --server/--ca, or read both (and the WebAuthn
relying party) from --config. Before an assertion is made the client recomputes its
challenge from the transaction the server sent and prints what is being signed
(``client_challenge``). An authenticator FILE is a DEMO ONLY software authenticator.
Admin keys sign policy changes locally: they never leave this machine.

Exit status: 0 done; 1 the OMS refused or failed (its one-line message on stderr, e.g.
``PolicyDenied: rule "trader-daily": …``); 2 the command could not run (arguments, files).
"""

from __future__ import annotations

import os

from mpcnode.transport.net_address import TLS13_ONLY_CIPHER_SUITES

# The OMS speaks TLS 1.3 only, as the nodes do: set before anything imports gRPC (see
# TLS13_ONLY_CIPHER_SUITES). Its clients (the nodes, the OMS itself) all speak TLS 1.3.
os.environ["GRPC_SSL_CIPHER_SUITES"] = TLS13_ONLY_CIPHER_SUITES  # overrides inherited values

import argparse
import sys
from collections.abc import Callable

from mpcnode.core.config_schema import ConfigError
from oms_core.audit import audit_cli
from oms_core.audit.audit_errors import AuditError, AuditTreeError
from oms_core.cli import (
    anchor_commands,
    demo_command,
    emergency_commands,
    policy_commands,
    request_commands,
    resolve_command,
    risk_command,
    serve_command,
    session_commands,
    setup_commands,
)
from oms_core.cli.client_challenge import ChallengeCheckError
from oms_core.cli.client_connection import authenticator_options, client_options
from oms_core.cli.exit_status import EXIT_REFUSED, EXIT_UNUSABLE, fail, one_line
from oms_core.cli.instance_setup import SetupError
from oms_core.cli.oms_client import OmsCallError
from oms_core.cli.token_file import TokenFileError
from oms_core.daemon.tls_certificate import CertificateError
from oms_core.oms_core_errors import OmsCoreError
from oms_core.risk import RiskConfigError
from oms_core.risk.live_risk import NoPolicyError
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.policy.policy_errors import PolicyError

Handler = Callable[[argparse.Namespace], int]

_LOCAL_ERRORS: tuple[type[Exception], ...] = (
    OmsCoreError, TokenFileError, ConfigError, SetupError, ApprovalError, AuditError,
    AuditTreeError, PolicyError, NoPolicyError, RiskConfigError, CertificateError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (OmsCallError, ChallengeCheckError) as exc:
        return fail(str(exc) if isinstance(exc, OmsCallError) else one_line(exc), EXIT_REFUSED)
    except _LOCAL_ERRORS as exc:
        return fail(one_line(exc), EXIT_UNUSABLE)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return fail(f"oms: cannot use{where}: {exc.strerror or exc}", EXIT_UNUSABLE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    connect, authenticator = client_options(), authenticator_options()
    setup_commands.register(commands)
    demo_command.register(commands)
    serve_command.register(commands)
    session_commands.register(commands, connect, authenticator)
    request_commands.register(commands, connect, authenticator)
    emergency_commands.register(commands, connect)
    policy_commands.register(commands, connect)
    audit_cli.register(commands)
    anchor_commands.register(commands)
    risk_command.register(commands)
    resolve_command.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
