"""The size bounds of node requests: every RPC has them, and the largest legitimate
messages fit them (measured on real protocol messages of the largest profile)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from mpcnode.core.errors import UsageError
from mpcnode.core.params import PROFILE_3072
from mpcnode.crypto import codec
from mpcnode.daemon import request_limits as limits
from mpcnode.protocol import aux_info, presign
from mpcnode.protocol.rounds import Done, RoundOutput
from mpcnode.protocol.session_params import ClusterView
from mpcnode.rpc import node_pb2 as pb
from mpcnode.sim.simulator import inbound_for, run_aux_info, run_keygen
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityKeys
from test_only.seeded_random import SeededRandom
from testing import fixture_keys
from zero_trust.approvals.approver_registry import MAX_CREDENTIAL_ID_BYTES
from zero_trust.approvals.assertion import (
    MAX_AUTHENTICATOR_DATA_BYTES,
    MAX_CLIENT_DATA_BYTES,
    MAX_SIGNATURE_BYTES,
    Approval,
)
from zero_trust.authorization import MAX_APPROVALS
from zero_trust.policy.bundle import MAX_BUNDLE_BYTES

MAX_CLUSTER = ClusterView(33, tuple(range(1, 65)))  # cluster_file.MAX_NODES nodes
SMALL = ClusterView(2, (1, 2, 3))


def test_every_rpc_of_the_service_has_its_bounds() -> None:
    service = pb.DESCRIPTOR.services_by_name["SignerNode"]
    inputs = {m.input_type.full_name for m in service.methods}
    assert inputs == {getattr(t, "DESCRIPTOR").full_name for t in limits._CHECKS}  # noqa: B009


def _messages(starts: Mapping[int, Any], rng: SeededRandom
              ) -> Iterator[RoundOutput[Any, Any]]:
    """Every round output of an honest run, round by round."""
    states = {i: step[0] for i, step in starts.items()}
    outs = {i: step[1] for i, step in starts.items()}
    while True:
        yield from outs.values()
        nxt = {i: s.receive(inbound_for(i, outs), rng) for i, s in states.items()}
        if any(isinstance(step, Done) for step in nxt.values()):
            return
        states = {i: step[0] for i, step in nxt.items()}
        outs = {i: step[1] for i, step in nxt.items()}


@pytest.fixture(scope="module")
def largest_payloads() -> tuple[int, int]:
    """The largest broadcast and direct payload of aux info and presign at cggmp21-3072
    (two parties: a message's size does not depend on the number of parties)."""
    rng = SeededRandom(b"limits")
    p = fixture_keys.test_primes(1536)
    parties = (1, 2)
    shares = run_keygen(parties, 2, b"k" * 32, rng)
    key_id = shares[1].public.key_id
    primes = {1: (p[0], p[1]), 2: (p[2], p[3])}
    aux_starts = {i: aux_info.start(aux_info.AuxConfig(i, parties, key_id, b"a" * 32,
                                                       PROFILE_3072, primes[i]), rng)
                  for i in parties}
    outputs = list(_messages(aux_starts, rng))
    aux = run_aux_info(parties, key_id, PROFILE_3072, primes, b"a" * 32, rng)
    presign_starts = {i: presign.start(presign.PresignConfig(shares[i], aux[i], parties,
                                                             b"p" * 32), rng)
                      for i in parties}
    outputs += list(_messages(presign_starts, rng))
    broadcast = max(len(codec.to_bytes(o.broadcast)) for o in outputs if o.broadcast)
    direct = max(len(codec.to_bytes(m)) for o in outputs for m in (o.direct or {}).values())
    return broadcast, direct


def test_the_largest_round_of_the_largest_cluster_fits(largest_payloads: tuple[int, int]
                                                       ) -> None:
    broadcast, direct = largest_payloads
    assert broadcast > 190_000 and direct > 30_000  # Π^prm/Π^mod and presign round 2
    me, peer = IdentityKeys.generate(1), IdentityKeys.generate(2)
    sid = b"s" * 32
    envs = [envelope.seal_broadcast(peer, sid, "aux_info/2", b"x" * broadcast),
            envelope.seal_direct(peer, me.public, sid, "presign/2", b"x" * direct)]
    inbound = envs * (len(MAX_CLUSTER.parties) - 1)
    req = pb.RoundRequest(nonce=b"n" * 32, inbound=inbound)
    limits.check_request(req, MAX_CLUSTER)
    assert req.ByteSize() <= limits.max_request_bytes(MAX_CLUSTER)
    small = pb.RoundRequest(nonce=b"n" * 32, inbound=envs * 2)
    limits.check_request(small, SMALL)
    assert small.ByteSize() <= limits.max_request_bytes(SMALL)


def test_a_sign_request_with_the_largest_approvals_and_transaction_fits() -> None:
    approval = Approval("u" * 64, b"c" * MAX_CREDENTIAL_ID_BYTES,
                        b"a" * MAX_AUTHENTICATOR_DATA_BYTES, b"d" * MAX_CLIENT_DATA_BYTES,
                        b"s" * MAX_SIGNATURE_BYTES).to_json()
    assert len(approval) <= limits.MAX_APPROVAL_BYTES
    auth = pb.Authorization(request_id="r" * 128,
                            transaction=b"t" * limits.MAX_TRANSACTION_BYTES,
                            policy_hash=b"h" * 32, initiator="u" * 64, usd_price="9" * 100,
                            approvals=[approval] * MAX_APPROVALS, expires_at=2**63 - 1,
                            replaces="r" * 128)
    witness = pb.AuditWitness(
        head=pb.TreeHead(log_id="l" * 255, tree_size=2**64 - 1, root_hash=b"r" * 32,
                         timestamp_ms=2**64 - 1, signature=b"s" * 64),
        consistency_proof=[b"p" * 32] * 65)
    req = pb.SignRequest(key_id=b"k" * 32, path=[2**31 - 1] * 255, digest=b"d" * 32,
                         presignature_id=b"p" * 32, request_id="q" * 256, authorization=auth,
                         audit_witness=witness)
    limits.check_request(req, SMALL)
    assert req.ByteSize() <= limits.max_request_bytes(SMALL)


def test_the_largest_policy_bundle_fits() -> None:
    req = pb.InstallPolicyRequest(bundle=b"{" * MAX_BUNDLE_BYTES)
    limits.check_request(req, SMALL)
    assert req.ByteSize() <= limits.max_request_bytes(SMALL)
    assert limits.max_request_bytes(SMALL) < MAX_BUNDLE_BYTES + 1024  # and nothing larger


@pytest.mark.parametrize(("req", "refusal"), [
    (pb.RoundRequest(nonce=b"n" * 32, inbound=[pb.Envelope()] * 5),
     "RoundRequest.inbound has 5 envelopes, at most 4"),
    (pb.SignRequest(key_id=b"k" * 32, presignature_id=b"p" * 32, request_id="q" * 257),
     "SignRequest.request_id has 257 bytes, at most 256"),
    (pb.SignRequest(key_id=b"k" * 32, presignature_id=b"p" * 32, request_id="q",
                    authorization=pb.Authorization(policy_hash=b"h" * 32,
                                                   approvals=[b"a"] * 17)),
     "Authorization.approvals has 17 approvals, at most 16"),
    (pb.IdentifySignersRequest(presignature_id=b"p" * 32, digest=b"d" * 32,
                               evidence=[pb.SignedEvidence()] * 2),
     "IdentifySignersRequest.evidence has 2 entries, at most 1"),
    (pb.AbortRequest(nonce=b"n" * 33), "AbortRequest.nonce has 33 bytes, must have 32"),
    (pb.SignRequest(key_id=b"k" * 32, presignature_id=b"p" * 32, request_id="q",
                    audit_witness=pb.AuditWitness(
                        head=pb.TreeHead(root_hash=b"r" * 32, signature=b"s" * 64),
                        consistency_proof=[b"p" * 32] * 66)),
     "AuditWitness.consistency_proof has 66 nodes, at most 65"),
    (pb.SignRequest(key_id=b"k" * 32, presignature_id=b"p" * 32, request_id="q",
                    audit_witness=pb.AuditWitness(
                        head=pb.TreeHead(log_id="l" * 256, root_hash=b"r" * 32,
                                         signature=b"s" * 64))),
     "AuditWitness.head.log_id has 256 bytes, at most 255"),
])
def test_a_refusal_names_the_field_and_its_limit(req: object, refusal: str) -> None:
    with pytest.raises(UsageError) as exc:
        limits.check_request(req, SMALL)
    assert str(exc.value) == refusal
