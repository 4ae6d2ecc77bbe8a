"""What client commands print: a request or a policy proposal, as aligned text for a person
or as JSON (``--json``) for a script."""

from __future__ import annotations

import datetime as dt
import json
import sys

from oms_core.rpc import oms_pb2 as pb


def request_dict(v: pb.RequestView) -> dict[str, object]:
    return {"request_id": v.request_id, "kind": v.kind, "state": v.state,
            "initiator": v.initiator,
            "asset": v.asset, "amount": v.amount, "destination": v.destination,
            "usd_amount": v.usd_amount, "rule": v.rule, "reason": v.reason,
            "policy_hash": v.policy_hash, "challenge": v.challenge.hex(),
            "approved_by": list(v.approved_by), "required": list(v.required),
            "transaction": "0x" + v.transaction.hex(),
            "signed_transaction": "0x" + v.signed_transaction.hex()
            if v.signed_transaction else "", "tx_hash": v.tx_hash,
            "signature": "0x" + v.signature.hex() if v.signature else ""}


def print_request(v: pb.RequestView, as_json: bool) -> None:
    if as_json:
        print_json(request_dict(v))
        return
    rows = [("request", v.request_id), ("kind", v.kind), ("state", v.state),
            ("initiator", v.initiator),
            ("amount", f"{v.amount} base units of {v.asset}"), ("to", v.destination),
            ("usd", v.usd_amount), ("rule", v.rule), ("reason", v.reason),
            ("needs", ", ".join(v.required)), ("approved by", ", ".join(v.approved_by)),
            ("challenge", v.challenge.hex()), ("tx hash", v.tx_hash),
            ("signed tx", "0x" + v.signed_transaction.hex() if v.signed_transaction else ""),
            ("signature", "0x" + v.signature.hex() if v.signature else "")]
    for key, value in rows:
        if value:
            print(f"{key:<12}{value}")


def proposal_dict(p: pb.ProposalView) -> dict[str, object]:
    return {"bundle_hash": p.bundle_hash, "version": p.version, "signed_by": list(p.signed_by),
            "quorum": p.quorum, "active": p.active, "summary": p.summary}


def print_proposal(p: pb.ProposalView, as_json: bool) -> None:
    if as_json:
        print_json(proposal_dict(p))
        return
    status = "ACTIVE" if p.active else f"pending ({len(p.signed_by)} of {p.quorum} admins)"
    print(f"policy v{p.version} {p.bundle_hash}: {p.summary}; {status}; signed by "
          f"{', '.join(p.signed_by) or 'nobody'}")
    if not p.active:
        print(f"next: each admin runs oms policy approve {p.bundle_hash} --admin-key FILE",
              file=sys.stderr)


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def when(epoch: float) -> str:
    """An epoch time as ISO 8601 UTC, to the second."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
