"""The size of every field of every signer-node request, checked before anything else.

A coordinator may be hostile (DESIGN §4): whatever it sends, a node must neither store it,
parse it at length, nor echo it into its logs before the request is known to be of a size an
honest coordinator could send. Every variable-length field of every ``SignerNode`` RPC
request has its bound here, in one place; the server checks a request against them right
after the caller's role and before the node sees it (``check_request``). A refusal is
``RequestTooLarge`` (INVALID_ARGUMENT), one line naming the field and its limit.

The whole message is bounded first by gRPC itself (``max_request_bytes``): the server's
``grpc.max_receive_message_length`` is the largest request these field bounds admit for the
cluster's size, so every request that could pass them fits and nothing larger is read.

Measured sizes behind the bounds (canonical JSON payloads, profile cggmp21-3072, the largest):
an aux-info round-2 or round-3 broadcast (Π^prm, Π^mod, 128 repetitions each) is 200,466
bytes, an aux-info Π^fac direct message 10,365 bytes, the largest presign message (round 2,
direct: two Π^aff-g and a Π^log*) 32,211 bytes. A signature request with ``MAX_APPROVALS``
approvals of the largest WebAuthn assertion the approval format admits and the largest
transaction is at most 357,952 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mpcnode.core.errors import UsageError
from mpcnode.protocol.session_params import ClusterView
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.consumption_journal import MAX_REQUEST_ID
from zero_trust.approvals.approver_registry import MAX_CREDENTIAL_ID_BYTES
from zero_trust.approvals.assertion import (
    MAX_AUTHENTICATOR_DATA_BYTES,
    MAX_CLIENT_DATA_BYTES,
    MAX_SIGNATURE_BYTES,
)
from zero_trust.approvals.challenge import MAX_REQUEST_ID_BYTES
from zero_trust.audit_tree.merkle import HASH_BYTES, MAX_PROOF_NODES
from zero_trust.audit_tree.tree_head import MAX_LOG_ID_BYTES
from zero_trust.audit_tree.tree_head import SIGNATURE_BYTES as TREE_HEAD_SIGNATURE_BYTES
from zero_trust.authorization import MAX_APPROVALS
from zero_trust.policy.bundle import MAX_BUNDLE_BYTES
from zero_trust.signed_message import MAX_MESSAGE_BYTES
from zero_trust.spend_quorum import MAX_RECEIPT_BYTES, MAX_STATEMENT_BYTES

NONCE_BYTES = 32  # a session nonce, as the coordinator draws it
KEY_ID_BYTES = 32  # PublicKeyData.key_id
SESSION_ID_BYTES = 32  # a session id (transcript.session_id); a presignature's id is one
DIGEST_BYTES = 32
SIGMA_BYTES = 32  # σ_i, big-endian
SIGNATURE_BYTES = 64  # Ed25519, of a node identity key
EPHEMERAL_KEY_BYTES = 32  # X25519
AEAD_NONCE_BYTES = 12  # ChaCha20-Poly1305
MAX_NAME = 32  # protocol, profile and round names
MAX_PATH_DEPTH = 255  # BIP32 depth is one byte
MAX_REASON = 1024  # an abort's reason, as the coordinator words it
MAX_BROADCAST_BODY = 512 * 1024  # 2.5 times the measured largest (200,466 bytes)
MAX_DIRECT_BODY = 64 * 1024  # 2 times the measured largest (32,211 bytes, sealed + 88)
MAX_EVIDENCE_BYTES = 64 * 1024  # identify.Evidence: Π^mul* and a wide Π^log*, like a direct
ENVELOPE_OVERHEAD = 256  # session id, round, ids, key, nonce, signature, protobuf tags
MAX_TRANSACTION_BYTES = 128 * 1024  # the largest transaction Ethereum nodes relay (geth)
MAX_USER_ID = 64  # approver_registry.check_user_id
MAX_DECIMAL_TEXT = 100  # a USD price as decimal text
MAX_APPROVAL_BYTES = 256 + sum(4 * -(-n // 3) for n in (
    MAX_CREDENTIAL_ID_BYTES, MAX_AUTHENTICATOR_DATA_BYTES, MAX_CLIENT_DATA_BYTES,
    MAX_SIGNATURE_BYTES))
"""An Approval's canonical JSON: its four byte fields as base64url, plus a user id and the
key names (256 bytes cover both)."""
MAX_INSTALL_BYTES = MAX_BUNDLE_BYTES + 16  # the bundle and its protobuf tag
AUDIT_WITNESS_BYTES = 512 + MAX_LOG_ID_BYTES + MAX_PROOF_NODES * (HASH_BYTES + 2)
"""An audit tree head (log id, root, signature, two integers) and its consistency proof."""
MAX_MESSAGE_CAP = 64 << 20  # no request is read beyond this, whatever the cluster


class RequestTooLarge(UsageError):  # noqa: N818 - the verdict, as an operator reads it
    """A field of a request is longer than any honest coordinator sends."""

    def __init__(self, field: str, size: int, limit: int, unit: str = "bytes") -> None:
        self.field = field
        super().__init__(f"{field} has {size} {unit}, at most {limit}")


def _at_most(field: str, value: bytes | str | Sequence[Any], limit: int,
             unit: str = "bytes") -> None:
    size = len(value.encode()) if isinstance(value, str) else len(value)
    if size > limit:
        raise RequestTooLarge(field, size, limit, unit)


def _exactly(field: str, value: bytes, sizes: tuple[int, ...]) -> None:
    if len(value) not in sizes:
        allowed = " or ".join(str(s) for s in sizes)
        raise UsageError(f"{field} has {len(value)} bytes, must have {allowed}")


def _envelope(field: str, env: pb.Envelope) -> None:
    _exactly(f"{field}.session_id", env.session_id, (SESSION_ID_BYTES,))
    _at_most(f"{field}.round", env.round, MAX_NAME, "characters")
    _at_most(f"{field}.body", env.body, MAX_DIRECT_BODY if env.recipient else MAX_BROADCAST_BODY)
    _exactly(f"{field}.ephemeral_key", env.ephemeral_key, (0, EPHEMERAL_KEY_BYTES))
    _exactly(f"{field}.nonce", env.nonce, (0, AEAD_NONCE_BYTES))
    _exactly(f"{field}.signature", env.signature, (SIGNATURE_BYTES,))


def _envelopes(field: str, envs: Sequence[pb.Envelope], limit: int) -> None:
    _at_most(field, envs, limit, "envelopes")
    for env in envs:
        _envelope(field, env)


def _start(req: pb.StartSessionRequest, cluster: ClusterView) -> None:
    nodes = len(cluster.parties)
    _exactly("StartSessionRequest.nonce", req.nonce, (NONCE_BYTES,))
    _at_most("StartSessionRequest.protocol", req.protocol, MAX_NAME, "characters")
    _at_most("StartSessionRequest.profile", req.profile, MAX_NAME, "characters")
    _exactly("StartSessionRequest.key_id", req.key_id, (0, KEY_ID_BYTES))
    _at_most("StartSessionRequest.path", req.path, MAX_PATH_DEPTH, "levels")
    for name, ids in (("parties", list(req.parties)), ("new_parties", list(req.new_parties))):
        if len(ids) > nodes or ids != sorted(set(ids)):
            raise UsageError(f"the {name} must be distinct ascending ids of the cluster's "
                             f"{nodes} nodes, got {len(ids)} ids")


def _round(req: pb.RoundRequest, cluster: ClusterView) -> None:
    _exactly("RoundRequest.nonce", req.nonce, (NONCE_BYTES,))
    # One broadcast and one direct message from each other party, at most, per round.
    _envelopes("RoundRequest.inbound", req.inbound, 2 * (len(cluster.parties) - 1))


def _abort(req: pb.AbortRequest, cluster: ClusterView) -> None:
    _exactly("AbortRequest.nonce", req.nonce, (NONCE_BYTES,))
    _at_most("AbortRequest.reason", req.reason, MAX_REASON)


def _sign(req: pb.SignRequest, cluster: ClusterView) -> None:
    _exactly("SignRequest.key_id", req.key_id, (KEY_ID_BYTES,))
    _at_most("SignRequest.path", req.path, MAX_PATH_DEPTH, "levels")
    _exactly("SignRequest.digest", req.digest, (0, DIGEST_BYTES))
    _exactly("SignRequest.presignature_id", req.presignature_id, (SESSION_ID_BYTES,))
    _at_most("SignRequest.request_id", req.request_id, MAX_REQUEST_ID)
    if req.HasField("authorization"):
        _authorization(req.authorization)
    _statements("SignRequest.spend_receipts", req.spend_receipts, cluster, MAX_RECEIPT_BYTES)
    _statements("SignRequest.spend_views", req.spend_views, cluster, MAX_STATEMENT_BYTES)
    if req.HasField("audit_witness"):
        _audit_witness(req.audit_witness)


def _audit_witness(witness: pb.AuditWitness) -> None:
    head = witness.head
    _at_most("AuditWitness.head.log_id", head.log_id, MAX_LOG_ID_BYTES)
    _exactly("AuditWitness.head.root_hash", head.root_hash, (HASH_BYTES,))
    _exactly("AuditWitness.head.signature", head.signature, (TREE_HEAD_SIGNATURE_BYTES,))
    _at_most("AuditWitness.consistency_proof", witness.consistency_proof, MAX_PROOF_NODES,
             "nodes")
    for node in witness.consistency_proof:
        _exactly("AuditWitness.consistency_proof[]", node, (HASH_BYTES,))


def _statements(field: str, statements: Sequence[pb.SignedStatement], cluster: ClusterView,
                limit: int) -> None:
    """Receipts or views of the spend quorum: at most one per node."""
    _at_most(field, statements, len(cluster.parties), "statements")
    for st in statements:
        _at_most(f"{field}[].statement", st.statement, limit)
        _exactly(f"{field}[].signature", st.signature, (SIGNATURE_BYTES,))


def _reserve(req: pb.ReserveSpendRequest, cluster: ClusterView) -> None:
    _exactly("ReserveSpendRequest.key_id", req.key_id, (KEY_ID_BYTES,))
    _at_most("ReserveSpendRequest.path", req.path, MAX_PATH_DEPTH, "levels")
    _exactly("ReserveSpendRequest.digest", req.digest, (0, DIGEST_BYTES))
    _authorization(req.authorization)


def _read(req: pb.ReadSpendsRequest, cluster: ClusterView) -> None:
    _exactly("ReadSpendsRequest.key_id", req.key_id, (KEY_ID_BYTES,))
    _exactly("ReadSpendsRequest.digest", req.digest, (DIGEST_BYTES,))
    _at_most("ReadSpendsRequest.request_id", req.request_id, MAX_REQUEST_ID_BYTES)
    _at_most("ReadSpendsRequest.initiator", req.initiator, MAX_USER_ID)
    _statements("ReadSpendsRequest.receipts", req.receipts, cluster, MAX_RECEIPT_BYTES)


def _authorization(auth: pb.Authorization) -> None:
    _at_most("Authorization.request_id", auth.request_id, MAX_REQUEST_ID_BYTES)
    _at_most("Authorization.transaction", auth.transaction, MAX_TRANSACTION_BYTES)
    _exactly("Authorization.policy_hash", auth.policy_hash, (DIGEST_BYTES,))
    _at_most("Authorization.initiator", auth.initiator, MAX_USER_ID)
    _at_most("Authorization.usd_price", auth.usd_price, MAX_DECIMAL_TEXT)
    _at_most("Authorization.approvals", auth.approvals, MAX_APPROVALS, "approvals")
    for approval in auth.approvals:
        _at_most("Authorization.approvals[]", approval, MAX_APPROVAL_BYTES)
    _at_most("Authorization.replaces", auth.replaces, MAX_REQUEST_ID_BYTES)
    _at_most("Authorization.message", auth.message, MAX_MESSAGE_BYTES)


def _install(req: pb.InstallPolicyRequest, cluster: ClusterView) -> None:
    _at_most("InstallPolicyRequest.bundle", req.bundle, MAX_BUNDLE_BYTES)


def _presignature_info(req: pb.PresignatureInfoRequest, cluster: ClusterView) -> None:
    _exactly("PresignatureInfoRequest.presignature_id", req.presignature_id,
             (SESSION_ID_BYTES,))


def _sign_evidence(req: pb.SignEvidenceRequest, cluster: ClusterView) -> None:
    _exactly("SignEvidenceRequest.presignature_id", req.presignature_id, (SESSION_ID_BYTES,))
    _at_most("SignEvidenceRequest.request_id", req.request_id, MAX_REQUEST_ID)
    _exactly("SignEvidenceRequest.digest", req.digest, (DIGEST_BYTES,))
    _at_most("SignEvidenceRequest.path", req.path, MAX_PATH_DEPTH, "levels")


def _identify(req: pb.IdentifySignersRequest, cluster: ClusterView) -> None:
    _exactly("IdentifySignersRequest.presignature_id", req.presignature_id,
             (SESSION_ID_BYTES,))
    _at_most("IdentifySignersRequest.request_id", req.request_id, MAX_REQUEST_ID)
    _exactly("IdentifySignersRequest.digest", req.digest, (DIGEST_BYTES,))
    _at_most("IdentifySignersRequest.path", req.path, MAX_PATH_DEPTH, "levels")
    t = cluster.threshold
    _at_most("IdentifySignersRequest.evidence", req.evidence, t - 1, "entries")
    for e in req.evidence:
        _exactly("IdentifySignersRequest.evidence[].sigma", e.sigma, (SIGMA_BYTES,))
        _at_most("IdentifySignersRequest.evidence[].evidence", e.evidence, MAX_EVIDENCE_BYTES)
        _exactly("IdentifySignersRequest.evidence[].signature", e.signature, (SIGNATURE_BYTES,))
    # Every signer's presign/2 direct messages to every other signer, disclosed.
    _envelopes("IdentifySignersRequest.disclosed", req.disclosed, t * (t - 1))


def _close(req: pb.CloseTranscriptRequest, cluster: ClusterView) -> None:
    _exactly("CloseTranscriptRequest.key_id", req.key_id, (KEY_ID_BYTES,))


def _nothing(req: Any, cluster: ClusterView) -> None:
    """A request without variable-length fields."""


_CHECKS: dict[type, Callable[[Any, ClusterView], None]] = {
    pb.InfoRequest: _nothing,
    pb.StartSessionRequest: _start,
    pb.RoundRequest: _round,
    pb.AbortRequest: _abort,
    pb.SignRequest: _sign,
    pb.ReserveSpendRequest: _reserve,
    pb.ReadSpendsRequest: _read,
    pb.InstallPolicyRequest: _install,
    pb.PresignatureInfoRequest: _presignature_info,
    pb.SignEvidenceRequest: _sign_evidence,
    pb.IdentifySignersRequest: _identify,
    pb.CloseTranscriptRequest: _close,
    pb.WitnessedHeadRequest: _nothing,
}


def check_request(req: Any, cluster: ClusterView) -> None:
    """Refuse ``req`` unless every field is within its bound for this node's cluster; a
    request type without an entry here is a bug (its test lists every RPC of the service)."""
    _CHECKS[type(req)](req, cluster)


def max_request_bytes(cluster: ClusterView) -> int:
    """The largest request the field bounds admit for ``cluster``, at most
    ``MAX_MESSAGE_CAP``: the server's ``grpc.max_receive_message_length``. Policy bundles
    dominate clusters up to 16 signers; the disclosed messages of an identification
    (t·(t − 1) of them) dominate larger ones, and past t = 32 they exceed the cap, so such
    a cluster cannot run identification after a failed signature in one call."""
    envelope_direct = MAX_DIRECT_BODY + ENVELOPE_OVERHEAD
    envelope_broadcast = MAX_BROADCAST_BODY + ENVELOPE_OVERHEAD
    peers, t = len(cluster.parties) - 1, cluster.threshold
    round_request = 64 + peers * (envelope_broadcast + envelope_direct)
    identify = 1024 + (t - 1) * (MAX_EVIDENCE_BYTES + 128) + t * (t - 1) * envelope_direct
    sign = (4096 + AUDIT_WITNESS_BYTES + MAX_TRANSACTION_BYTES + MAX_MESSAGE_BYTES
            + MAX_APPROVALS * (MAX_APPROVAL_BYTES + 8)
            + (peers + 1) * (MAX_RECEIPT_BYTES + MAX_STATEMENT_BYTES + 2 * (SIGNATURE_BYTES + 8)))
    return min(MAX_MESSAGE_CAP, max(MAX_INSTALL_BYTES, round_request, identify, sign))
