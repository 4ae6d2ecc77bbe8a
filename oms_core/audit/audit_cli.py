"""``oms audit``: the auditor's commands. The ``oms`` CLI mounts them with ``register``.

    oms audit verify --db oms.sqlite3 --public-key audit.pub.pem [--tree-head HEAD.json …]
                     [--witness HEAD.json | --witness node:ID --cluster DIR …]
                     [--anchors CONTRACT --rpc URL [--from-block N]]
    oms audit head --db oms.sqlite3
    oms audit prove inclusion --db oms.sqlite3 --index I [--tree-size N] > proof.json
    oms audit prove consistency --db oms.sqlite3 --old-size M [--new-size N] > proof.json
    oms audit check-proof proof.json --public-key audit.pub.pem

``head`` prints the newest signed tree head as JSON: an auditor keeps these outside the
OMS and passes them back with ``verify --tree-head``, which is what detects a log cut
short together with its own tree heads. ``verify --witness`` does the same with the head
a signer node witnessed (``WitnessedHead``, read over the coordinator's mTLS identity from
the cluster directory ``--cluster``) or a head saved from one: the nodes keep the newest
head every sign request carried, so a log rewritten with recomputed hashes, or cut short,
with its tree heads deleted no longer gives the witnessed root. ``verify --anchors`` does
the same with every root the OMS anchored on chain (``AuditAnchor``), read with eth_getLogs
from ``--rpc``: nothing about the anchors is taken from the database, and a defect names
the anchor's block and transaction. ``prove`` prints a proof
against a *signed* head (of exactly the requested size), so ``check-proof`` needs nothing
but the proof file and the audit public key. The database is opened read-only.

Exit status: 0 everything checked out; 1 a defect was found (the log or the proof is
bad); 2 the command could not run (missing file, not an audit database, malformed input,
no signed tree head of that size).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from coordinator.node_client import NodeClient
from ethereum.addresses import parse_address
from ethereum.ethereum_errors import EthereumError
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.core.config_schema import ConfigError
from mpcnode.state.audit_witness_state import tree_head_from_proto
from oms_core.audit.audit_errors import (
    AUDIT_FAILURES,
    AuditError,
    AuditTreeError,
    AuditVerificationError,
    MerkleProofError,
    TreeHeadError,
)
from oms_core.audit.entry import entry_from_json_object
from oms_core.audit.log import AuditLog
from oms_core.audit.signing_key import key_fingerprint, load_public_key
from oms_core.audit.verify import verify_log
from oms_core.chain.audit_anchor import Anchor, AnchorError, check_contract, read_anchors
from oms_core.chain.endpoints import CallReverted, EndpointError
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.audit_tree.merkle import verify_consistency, verify_inclusion
from zero_trust.audit_tree.tree_head import SignedTreeHead

EXIT_OK = 0
EXIT_DEFECT = 1
EXIT_UNUSABLE = 2

Handler = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")


class _UnusableInputError(OmsCoreError):
    """The command cannot run on this input (exit status 2)."""


class _DefectFoundError(OmsCoreError):
    """The proof or the log is bad (exit status 1)."""


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` and its sub-commands to a parent CLI's sub-command set."""
    audit = subcommands.add_parser(
        "audit", help="verify the audit log and its proofs",
        description="Verify the OMS audit log, and prove or check entries and tree heads "
                    "offline. Exit status: 0 sound, 1 defect found, 2 unusable input.")
    actions = audit.add_subparsers(dest="audit_command", required=True)

    verify = actions.add_parser("verify", help="check the whole log against the audit key")
    _add_db(verify)
    verify.add_argument("--public-key", type=Path, required=True, help="audit public key PEM")
    verify.add_argument("--tree-head", type=Path, action="append", default=[],
                        help="a signed tree head kept outside the OMS (JSON from "
                             "'audit head'); repeatable")
    verify.add_argument("--witness", action="append", default=[],
                        help="a tree head a signer node witnessed: 'node:ID' (fetched from "
                             "that node, needs --cluster) or a saved head JSON; repeatable")
    verify.add_argument("--cluster", type=Path,
                        help="cluster directory (cluster.toml, ca/, coordinator/) to reach "
                             "the nodes named by --witness node:ID")
    verify.add_argument("--anchors", metavar="CONTRACT",
                        help="the AuditAnchor contract the OMS anchors its roots in: every "
                             "anchor read from the chain must match the log (needs --rpc)")
    verify.add_argument("--rpc", metavar="URL",
                        help="a JSON-RPC endpoint of the chain holding --anchors")
    verify.add_argument("--from-block", type=int, default=0,
                        help="first block to read anchors from (the contract's deployment)")
    verify.set_defaults(handler=_run_verify)

    head = actions.add_parser("head", help="print the newest signed tree head as JSON")
    _add_db(head)
    head.set_defaults(handler=_run_head)

    prove = actions.add_parser("prove", help="print an inclusion or consistency proof")
    proofs = prove.add_subparsers(dest="proof_kind", required=True)
    inclusion = proofs.add_parser("inclusion", help="entry I is in the tree of N entries")
    _add_db(inclusion)
    inclusion.add_argument("--index", type=int, required=True, help="entry index")
    inclusion.add_argument("--tree-size", type=int,
                           help="size of a signed tree head (default: the newest)")
    inclusion.set_defaults(handler=_run_prove_inclusion)
    consistency = proofs.add_parser("consistency", help="the tree of M entries is a prefix "
                                                        "of the tree of N entries")
    _add_db(consistency)
    consistency.add_argument("--old-size", type=int, required=True,
                             help="size of the older signed tree head")
    consistency.add_argument("--new-size", type=int,
                             help="size of the newer signed tree head (default: the newest)")
    consistency.set_defaults(handler=_run_prove_consistency)

    check = actions.add_parser("check-proof", help="check a proof file offline")
    check.add_argument("proof", type=Path, help="JSON printed by 'audit prove'")
    check.add_argument("--public-key", type=Path, required=True, help="audit public key PEM")
    check.set_defaults(handler=_run_check_proof)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["audit", "verify", …])``."""
    parser = argparse.ArgumentParser(prog="oms")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, required=True, help="the OMS SQLite database")


def _run_verify(args: argparse.Namespace) -> int:
    def run() -> int:
        public_key = load_public_key(args.public_key)
        trusted = [_read_tree_head(path) for path in args.tree_head]
        witnessed = [_witnessed_head(spec, args.cluster) for spec in args.witness]
        owner, anchors = _anchors(args)
        with _open_db(args.db) as conn:
            try:
                report = verify_log(conn, public_key, trusted_heads=trusted,
                                    witnessed_heads=witnessed,
                                    anchored_roots=[a.root() for a in anchors])
            except AuditVerificationError as exc:
                print(f"audit log DEFECT: {exc}", file=sys.stderr)
                return EXIT_DEFECT
        latest = report.latest_tree_head
        signed = (f"{report.tree_heads} signed tree heads, the newest over "
                  f"{latest.tree_size} entries at {_when(latest.timestamp_ms)}"
                  if latest else "no signed tree head yet")
        kept = (f"; {report.trusted_heads} externally kept tree heads matched"
                if report.trusted_heads else "")
        kept += "".join(f"; {label} matched" for label, _ in witnessed)
        if anchors:
            kept += (f"; {len(anchors)} anchors on chain (AuditAnchor {args.anchors} owned by "
                     f"{owner}) matched, the newest over {anchors[-1].tree_size} entries "
                     f"({anchors[-1].label})")
        print(f"audit log {report.log_id!r} OK: {report.entries} entries, root "
              f"{report.root_hash.hex()}; {signed}{kept}; audit key "
              f"sha256:{key_fingerprint(public_key)}")
        if report.unsigned_entries:
            print(f"note: the last {report.unsigned_entries} entries are not yet covered by a "
                  "signed tree head", file=sys.stderr)
        return EXIT_OK
    return _guarded(run)


def _run_head(args: argparse.Namespace) -> int:
    def run() -> int:
        with _open_db(args.db) as conn:
            head = _log(conn).latest_tree_head(conn)
        if head is None:
            raise _UnusableInputError("the log has no signed tree head yet")
        _print_json(head.to_json_object())
        return EXIT_OK
    return _guarded(run)


def _run_prove_inclusion(args: argparse.Namespace) -> int:
    def run() -> int:
        with _open_db(args.db) as conn:
            log = _log(conn)
            head = _head_of_size(log, conn, args.tree_size)
            if not 0 <= args.index < head.tree_size:
                raise _UnusableInputError(f"entry {args.index} is not in the signed tree of "
                                f"{head.tree_size} entries")
            entry = log.entry(conn, args.index)
            path = log.inclusion_proof(conn, args.index, head.tree_size)
        _print_json({"type": "inclusion", "index": entry.index, "entry": entry.to_json_object(),
                     "audit_path": [node.hex() for node in path],
                     "tree_head": head.to_json_object()})
        return EXIT_OK
    return _guarded(run)


def _run_prove_consistency(args: argparse.Namespace) -> int:
    def run() -> int:
        with _open_db(args.db) as conn:
            log = _log(conn)
            new = _head_of_size(log, conn, args.new_size)
            old = _head_of_size(log, conn, args.old_size)
            if old.tree_size > new.tree_size:
                raise _UnusableInputError(f"--old-size {old.tree_size} is larger than --new-size "
                                f"{new.tree_size}")
            proof = log.consistency_proof(conn, old.tree_size, new.tree_size)
        _print_json({"type": "consistency", "old_tree_head": old.to_json_object(),
                     "new_tree_head": new.to_json_object(),
                     "proof": [node.hex() for node in proof]})
        return EXIT_OK
    return _guarded(run)


def _run_check_proof(args: argparse.Namespace) -> int:
    def run() -> int:
        public_key = load_public_key(args.public_key)
        document = _read_json(args.proof)
        kind = document.get("type")
        if kind == "inclusion":
            message = _check_inclusion(document, public_key)
        elif kind == "consistency":
            message = _check_consistency(document, public_key)
        else:
            raise _UnusableInputError(f"{args.proof}: 'type' must be 'inclusion' or 'consistency'")
        print(f"{message}; audit key sha256:{key_fingerprint(public_key)}")
        return EXIT_OK
    return _guarded(run)


def _check_inclusion(document: dict[str, Any], public_key: Ed25519PublicKey) -> str:
    head = _parse_head(document.get("tree_head"))
    entry = _parsed(lambda: entry_from_json_object(document.get("entry")))
    path = _hex_list(document.get("audit_path"), "audit_path")
    if document.get("index") != entry.index:
        raise _DefectFoundError(f"the proof is for index {document.get('index')!r} but the entry "
                      f"says {entry.index}")
    _verified(head, public_key)
    try:
        verify_inclusion(entry.leaf_hash, entry.index, head.tree_size, path, head.root_hash)
    except MerkleProofError as exc:
        raise _DefectFoundError(f"inclusion proof FAILS: {exc}") from None
    return (f"inclusion proof OK: entry {entry.index} ({entry.action!r} by {entry.actor!r}) "
            f"is in log {head.log_id!r} of {head.tree_size} entries signed at "
            f"{_when(head.timestamp_ms)}")


def _check_consistency(document: dict[str, Any], public_key: Ed25519PublicKey) -> str:
    old = _parse_head(document.get("old_tree_head"))
    new = _parse_head(document.get("new_tree_head"))
    proof = _hex_list(document.get("proof"), "proof")
    _verified(old, public_key)
    _verified(new, public_key)
    if old.log_id != new.log_id:
        raise _DefectFoundError(f"the tree heads are of two logs ({old.log_id!r}, {new.log_id!r})")
    try:
        verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    except MerkleProofError as exc:
        raise _DefectFoundError(f"consistency proof FAILS: {exc}") from None
    return (f"consistency proof OK: log {new.log_id!r} of {new.tree_size} entries "
            f"({_when(new.timestamp_ms)}) extends its first {old.tree_size} entries "
            f"({_when(old.timestamp_ms)})")


def _guarded(run: Callable[[], int]) -> int:
    """Run a command, turning expected failures into a message and an exit status."""
    try:
        return run()
    except _DefectFoundError as exc:
        print(f"DEFECT: {exc}", file=sys.stderr)
        return EXIT_DEFECT
    except (_UnusableInputError, AuditError, AuditTreeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except sqlite3.Error as exc:
        print(f"error: cannot read the database: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE


@contextmanager
def _open_db(path: Path) -> Iterator[sqlite3.Connection]:
    """Open the database read-only: an auditor's command must never change it."""
    if not path.is_file():
        raise _UnusableInputError(f"no database file at {path}")
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        yield conn


def _log(conn: sqlite3.Connection) -> AuditLog:
    try:
        return AuditLog.open(conn)
    except AuditError as exc:
        raise _UnusableInputError(str(exc)) from None


def _head_of_size(log: AuditLog, conn: sqlite3.Connection, size: int | None) -> SignedTreeHead:
    if size is None:
        head = log.latest_tree_head(conn)
        if head is None:
            raise _UnusableInputError("the log has no signed tree head yet")
        return head
    try:
        return log.tree_head_of_size(conn, size)
    except AuditError as exc:
        raise _UnusableInputError(str(exc)) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _UnusableInputError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise _UnusableInputError(f"{path} is not valid JSON") from None
    if not isinstance(document, dict):
        raise _UnusableInputError(f"{path} does not hold a JSON object")
    return document


def _read_tree_head(path: Path) -> SignedTreeHead:
    try:
        return SignedTreeHead.from_json_object(_read_json(path))
    except TreeHeadError as exc:
        raise _UnusableInputError(f"{path}: {exc}") from None


def _witnessed_head(spec: str, cluster: Path | None) -> tuple[str, SignedTreeHead]:
    """``node:ID``: the head that node witnessed, asked over mTLS; else a saved head file."""
    if not spec.startswith("node:"):
        head = _read_tree_head(Path(spec))
        return f"tree head witnessed in {spec} (size {head.tree_size})", head
    node_id = spec.removeprefix("node:")
    if cluster is None:
        raise _UnusableInputError(f"--witness {spec} needs --cluster DIR to reach the node")
    if not node_id.isdigit():
        raise _UnusableInputError(f"--witness {spec}: the node id is a number")
    try:
        config = load_coordinator_config(cluster)
        entry = config.cluster.nodes.get(int(node_id))
        if entry is None:
            raise _UnusableInputError(f"--witness {spec}: no node {node_id} in {cluster}")
        client = NodeClient(entry, config.ca.read_bytes(), config.cert.read_bytes(),
                            config.key.read_bytes(), timeout=30.0)
        try:
            answer = client.witnessed_head()
        finally:
            client.close()
    except (ConfigError, OSError) as exc:
        raise _UnusableInputError(f"--witness {spec}: {exc}") from None
    except grpc.RpcError as exc:
        raise _UnusableInputError(f"--witness {spec}: node {node_id} did not answer: "
                                  f"{exc.code().name} {exc.details()}") from None
    if not answer.HasField("head"):
        raise _UnusableInputError(f"node {node_id} has witnessed no tree head (is "
                                  "[audit] oms_public_key in its cluster.toml?)")
    head = _parsed(lambda: tree_head_from_proto(answer.head))
    return f"tree head witnessed by node {node_id} (size {head.tree_size})", head


def _anchors(args: argparse.Namespace) -> tuple[str, list[Anchor]]:
    """The contract's owner and every anchor of ``--anchors`` read from ``--rpc``, straight
    from the chain: what the OMS database says about its anchors is not consulted."""
    if args.anchors is None:
        if args.rpc is not None:
            raise _UnusableInputError("--rpc is for --anchors CONTRACT")
        return "", []
    if args.rpc is None:
        raise _UnusableInputError("--anchors needs --rpc URL to read the chain")
    if args.from_block < 0:
        raise _UnusableInputError("--from-block must not be negative")
    try:
        contract = "0x" + parse_address(args.anchors, "--anchors").hex()
    except EthereumError as exc:
        raise _UnusableInputError(str(exc)) from None
    endpoint = Web3Endpoint.http(args.rpc)
    try:
        owner = check_contract(endpoint, contract)
        anchors = read_anchors(endpoint, contract, from_block=args.from_block)
    except (AnchorError, EndpointError, CallReverted) as exc:
        raise _UnusableInputError(f"--anchors {args.anchors}: {exc}") from None
    if not anchors:
        raise _UnusableInputError(f"--anchors {args.anchors}: no anchor on chain from block "
                                  f"{args.from_block} (wrong contract, or nothing anchored "
                                  "yet)")
    return owner, anchors


def _parse_head(obj: object) -> SignedTreeHead:
    return _parsed(lambda: SignedTreeHead.from_json_object(obj))


def _parsed(parse: Callable[[], _T]) -> _T:
    try:
        return parse()
    except AUDIT_FAILURES as exc:
        raise _UnusableInputError(f"malformed proof: {exc}") from None


def _verified(head: SignedTreeHead, public_key: Ed25519PublicKey) -> None:
    try:
        head.verify(public_key)
    except TreeHeadError as exc:
        raise _DefectFoundError(f"the tree head is not signed by the audit key: {exc}") from None


def _hex_list(value: object, field: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _UnusableInputError(f"malformed proof: '{field}' is a list of hex strings")
    try:
        return [bytes.fromhex(item) for item in value]
    except ValueError:
        raise _UnusableInputError(f"malformed proof: '{field}' holds invalid hex") from None


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))


def _when(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
