"""``oms resolve ID --as confirmed|failed --reason TEXT --operator NAME``: an operator
settles a request that recovery cannot (``RequestSigning.resolve``).

It runs on the OMS host against the database of ``oms.toml`` (the daemon may be running:
SQLite serialises the writers), with the chain endpoints of the [chain] section to check
that a transaction settled as confirmed really is. The settlement is an audit entry naming
the operator and the reason; the host's access control says who may run it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mpcnode.ceremony.cluster_file import load_coordinator_config
from oms_core.app.oms_config import load_settings
from oms_core.app.requests.request_lifecycle import parse_state
from oms_core.app.requests.request_signing import RESOLUTIONS
from oms_core.app.service import OmsCore
from oms_core.audit.signing_key import load_signer
from oms_core.chain.prices import FixedPrices
from oms_core.cli.exit_status import EXIT_OK, EXIT_REFUSED, fail, one_line
from oms_core.daemon.runtime import chain_config
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.authorization import SigningRequest


class ResolveOnlySigner:
    """The signer of a core opened only to settle a request: it signs nothing."""

    def sign(self, request: SigningRequest, policy_hash: str, approvals: list[bytes]
             ) -> tuple[int, int, int]:
        raise OmsCoreError("oms resolve never signs")

    def install_policy(self, signed_bundle_json: bytes) -> None:
        raise OmsCoreError("oms resolve never installs a policy")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = commands.add_parser("resolve", help="settle an in-flight request (operator, audited)")
    cmd.add_argument("request_id")
    cmd.add_argument("--as", dest="outcome", required=True,
                     choices=sorted(s.value for s in RESOLUTIONS))
    cmd.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    cmd.add_argument("--operator", required=True, help="who settles it (audit log)")
    cmd.add_argument("--config", type=Path, default=Path("oms.toml"))
    cmd.set_defaults(handler=_resolve)


def _resolve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    cluster = load_coordinator_config(settings.cluster_dir).cluster
    core = OmsCore(settings.core_config(cluster, chain_config(settings)), ResolveOnlySigner(),
                   FixedPrices(settings.prices),
                   load_signer(settings.audit_key, settings.read_audit_passphrase()))
    try:
        req = core.resolve(args.request_id, parse_state(args.outcome),
                           operator=args.operator, reason=args.reason)
    except OmsCoreError as exc:  # the OMS's refusal, as the daemon would say it
        return fail(one_line(exc), EXIT_REFUSED)
    finally:
        core.close()
    print(f"request {req.request_id} is {req.state.value}")
    return EXIT_OK
