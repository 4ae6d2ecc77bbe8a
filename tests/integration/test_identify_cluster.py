"""Identifiable aborts over the network (CGGMP21 §4.3; DESIGN §2): real signer nodes
(in-process gRPC servers over mutual TLS) and the coordinator name the signer that lied
about δ_i in presigning or about σ_i in signing.

Three nodes, a 3-of-3 key: every test has two honest verifiers against one cheater.
Cheaters are honest nodes with one behaviour patched (TEST ONLY).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from coordinator.coordinator import Coordinator, SessionAbortedError
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.core.errors import ProtocolError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Q
from mpcnode.daemon import sign_identification
from mpcnode.daemon.node import SignerNode
from mpcnode.protocol import identify, presign
from mpcnode.protocol.identify import Evidence
from mpcnode.protocol.presignature import Presignature, PresignaturePublic
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.protocol.sign import SignatureShare, rerandomize
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport.sessions import Session
from mpcnode.transport.system_random import SystemRandom
from test_only.node_daemon import running_test_node
from testing.cluster_harness import make_cluster

NODES = 3
SIGNERS = (1, 2, 3)
DIGEST = hashlib.sha256(b"test_identify_cluster").digest()


@dataclass
class Cluster:
    root: Path
    key_id: bytes
    nodes: dict[int, SignerNode]

    @property
    def chain_code(self) -> bytes:
        return self.nodes[1].store.get_key_share(self.key_id).public.chain_code

    def coordinator(self, cls: type[Coordinator] = Coordinator) -> Coordinator:
        """A fresh coordinator (an empty presignature pool) on the running nodes."""
        return cls(load_coordinator_config(self.root), timeout=60.0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("identify") / "cluster"
    make_cluster(root, NODES, NODES)
    with ExitStack() as stack:
        nodes = {}
        for i in SIGNERS:
            _server, node, _store = stack.enter_context(
                running_test_node(root / f"node{i}" / "node.toml"))
            nodes[i] = node
        with Coordinator(load_coordinator_config(root), timeout=120.0) as c:
            key, _ = c.keygen()
            c.aux_info(key.key_id)
        yield Cluster(root, key.key_id, nodes)


def aborted(run: Callable[[], Any]) -> SessionAbortedError:
    with pytest.raises(SessionAbortedError) as exc:
        run()
    return exc.value


def rpc_error(run: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        run()
    return exc.value


def culprit_of(exc: grpc.RpcError) -> str:
    culprit: str = dict(exc.trailing_metadata() or ()).get("culprit", "")
    return culprit


# --- δ: a lie in presigning round 3 ------------------------------------------------------------


class DeltaLiar(Session[Presignature]):
    """TEST ONLY: adds 1 to δ_i in its round-3 broadcast (and in its own state, so that
    it too fails the δ check and joins identification); every proof stays honest."""

    def seal(self, out: RoundOutput[object, object]) -> list[pb.Envelope]:
        if isinstance(out.broadcast, presign.Bcast3):
            lie = dataclasses.replace(out.broadcast, delta=(out.broadcast.delta + 1) % Q)
            assert isinstance(self.state, presign.Round3)
            self.state = dataclasses.replace(self.state, own_msg=lie)
            out = dataclasses.replace(out, broadcast=lie)
        return super().seal(out)


class BlamingDeltaLiar(DeltaLiar):
    """TEST ONLY: the δ liar that, in the identification round, names party 1."""

    def deliver(self, inbound: list[pb.Envelope], rng: Any) -> list[pb.Envelope]:
        if self.round_spec.name == "presign/identify":
            raise ProtocolError(1, "δ check failed: party 1's δ_1 does not match (a lie)")
        return super().deliver(inbound, rng)


def make_presign_liar(monkeypatch: pytest.MonkeyPatch, node: SignerNode,
                      cls: type[Session[Presignature]]) -> None:
    start = node.start

    def lying_start(req: pb.StartSessionRequest) -> pb.RoundResponse:
        resp = start(req)
        if req.protocol == "presign":
            node._sessions[req.nonce][0].__class__ = cls  # TEST ONLY
        return resp

    monkeypatch.setattr(node, "start", lying_start)


def test_delta_liar_is_named_by_the_coordinator(cluster: Cluster,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_presign_liar(monkeypatch, cluster.nodes[2], DeltaLiar)
    with cluster.coordinator() as c:
        err = aborted(lambda: c.presign(cluster.key_id, SIGNERS))
        assert (err.protocol, err.culprit) == ("presign", 2)
        assert "δ check failed: party 2's δ_2 does not match its ciphertexts" in err.reason
        assert c.pool_level(cluster.key_id, SIGNERS) == 0
    # The nodes dropped the session (nothing half-finished is left behind).
    assert all(n.session_count == 0 for n in cluster.nodes.values())


def test_a_liar_that_blames_another_is_outvoted(cluster: Cluster,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """run_session weighs every node's abort: 1 and 3 name 2, the liar names 1."""
    make_presign_liar(monkeypatch, cluster.nodes[2], BlamingDeltaLiar)
    with cluster.coordinator() as c:
        err = aborted(lambda: c.presign(cluster.key_id, SIGNERS))
    assert err.culprit == 2
    assert "accusations: {2: [1, 3], 1: [2]}" in err.reason


def test_presigning_still_works_after_the_aborts(cluster: Cluster) -> None:
    with cluster.coordinator() as c:
        [public] = c.presign(cluster.key_id, SIGNERS)
        sig = c.sign(cluster.key_id, DIGEST, healthy=SIGNERS)
    assert sig.r == nonce_r(cluster, public)


USED_PATH = (0, 7)  # the path the ``used`` presignature signed under


def nonce_r(cluster: Cluster, public: PresignaturePublic) -> int:
    """The r of the root signature on DIGEST from ``public``: R'.x with R' = τ·R."""
    return rerandomize(public, cluster.chain_code, (), DIGEST).r


# --- σ: a lie in the signing round ---------------------------------------------------------------


def make_sigma_liar(monkeypatch: pytest.MonkeyPatch, node: SignerNode) -> None:
    """The node computes σ_i + 1, and that is what its store records and it released."""
    sign_once = node.store.sign_once

    def lying_sign_once(presig_id: bytes, request_id: str,
                        compute: Callable[[Presignature], SignatureShare],
                        *args: Any, **kwargs: Any) -> SignatureShare:
        def lie(p: Presignature) -> SignatureShare:
            share = compute(p)
            return dataclasses.replace(share, sigma=(share.sigma + 1) % Q)

        return sign_once(presig_id, request_id, lie, *args, **kwargs)

    monkeypatch.setattr(node.store, "sign_once", lying_sign_once)


def stand_by_the_lie(monkeypatch: pytest.MonkeyPatch, node: SignerNode) -> None:
    """The liar's SignEvidence signs its evidence and σ_i without the check that σ_i
    fits the digest (which an honest node runs first)."""

    def sign_evidence(req: pb.SignEvidenceRequest) -> pb.SignEvidenceResponse:
        share = node.store.answered(req.request_id, req.presignature_id)
        assert share is not None
        public, aux, sset, key_share = node._identification_material(  # TEST ONLY
            req.presignature_id)
        assert public.view is not None
        evidence = identify.sign_evidence(node.party, aux, public,
                                          sset.effective_secret(key_share), public.view,
                                          SystemRandom())
        rr = node._rerandomized(key_share, public, tuple(req.path), req.digest)  # TEST ONLY
        return pb.SignEvidenceResponse(party=node.party, evidence=sign_identification.sign_entries(
            node.keys, public.session, req.request_id, rr, share.sigma, evidence))

    monkeypatch.setattr(node, "sign_evidence", sign_evidence)


@pytest.mark.parametrize("path", [(), USED_PATH], ids=["root", "bip32"])
def test_sigma_liar_is_named_by_both_honest_verifiers(cluster: Cluster,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      path: tuple[int, ...]) -> None:
    """Node 3 releases a wrong σ_3 and signs evidence on it: the evidence shows χ_3·R,
    and τ·σ_3·R ≠ (m + r·e_P)·k_3·R + r·χ_3·R, so nodes 1 and 2 each name it, for a
    root signature and for a re-randomized, tweaked one under a BIP32 path."""
    make_sigma_liar(monkeypatch, cluster.nodes[3])
    stand_by_the_lie(monkeypatch, cluster.nodes[3])
    with cluster.coordinator() as c:
        err = aborted(lambda: c.sign(cluster.key_id, DIGEST, path=path, healthy=SIGNERS))
    assert (err.protocol, err.culprit) == ("sign", 3)
    assert "party 3's σ contradicts its presignature share" in err.reason
    assert "accusations: {3: [1, 2]}" in err.reason
    assert "verdicts {1: [3], 2: [3], 3: []}" in err.reason


def test_sigma_liar_that_will_not_sign_its_evidence_is_named(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Node 3's store holds a wrong σ_3, but its SignEvidence is the honest code: it
    finds σ_3 does not fit the digest and refuses. The coordinator, which sent every
    signer the same digest, names the signer that will not back its share."""
    make_sigma_liar(monkeypatch, cluster.nodes[3])
    with cluster.coordinator() as c:
        err = aborted(lambda: c.sign(cluster.key_id, DIGEST, healthy=SIGNERS))
    assert err.culprit == 3
    assert "party 3 did not back its σ_3 with evidence" in err.reason


class ShareTamperingCoordinator(Coordinator):
    """TEST ONLY: changes node 2's σ_2 in its SignResponse, as a lying node 2 or a
    tampering coordinator would."""

    def _sign_at(self, signers: Any, req: pb.SignRequest,
                 witnesses: Mapping[int, pb.AuditWitness]) -> dict[int, pb.SignResponse]:
        out = super()._sign_at(signers, req, witnesses)
        bad = (int.from_bytes(out[2].sigma, "big") + 1) % Q
        out[2] = pb.SignResponse(party=2, presignature_id=out[2].presignature_id,
                                 sigma=bad.to_bytes(32, "big"))
        return out


def test_a_changed_sign_response_is_named_by_the_coordinator_only(cluster: Cluster) -> None:
    """What this shows: the σ_2 the coordinator received differs from the σ_2 node 2
    signs in its evidence, and the coordinator names node 2 on that, its own
    observation (over mutual TLS only node 2 can have answered). The nodes, which see
    node 2's signed σ_2, name nobody: a coordinator that alters a σ_j, as this one
    does, can claim a culprit but cannot get the honest nodes to name one."""
    with cluster.coordinator(ShareTamperingCoordinator) as c:
        err = aborted(lambda: c.sign(cluster.key_id, DIGEST, healthy=SIGNERS))
    assert err.culprit == 2
    assert "party 2 released one σ_2 and signed evidence on another" in err.reason
    assert "verdicts {1: [], 2: [], 3: []}" in err.reason


# --- the RPCs against a tampering relay ------------------------------------------------------


@dataclass
class Used:
    """An honestly used presignature: its id, request id and kept transcript."""

    presig_id: bytes
    request_id: str
    transcript: list[pb.Envelope]


@pytest.fixture(scope="module")
def used(cluster: Cluster) -> Used:
    with cluster.coordinator() as c:
        [public] = c.presign(cluster.key_id, SIGNERS)
        transcript = list(c._transcripts[public.session])  # TEST ONLY
        c.sign(cluster.key_id, DIGEST, path=USED_PATH, healthy=SIGNERS, request_id="used")
    return Used(public.session, "used/0", transcript)


def evidence_from(c: Coordinator, used: Used, digest: bytes = DIGEST,
                  path: tuple[int, ...] = USED_PATH) -> list[pb.SignedEvidence]:
    req = pb.SignEvidenceRequest(presignature_id=used.presig_id, request_id=used.request_id,
                                 digest=digest, path=list(path))
    return [e for i in SIGNERS for e in c.clients[i].sign_evidence(req).evidence]


def identify_at(c: Coordinator, used: Used, verifier: int, evidence: list[pb.SignedEvidence],
                transcript: list[pb.Envelope] | None = None,
                path: tuple[int, ...] = USED_PATH) -> list[int]:
    resp = c.clients[verifier].identify_signers(pb.IdentifySignersRequest(
        presignature_id=used.presig_id, request_id=used.request_id, digest=DIGEST,
        path=list(path), evidence=[e for e in evidence if e.verifier == verifier],
        disclosed=used.transcript if transcript is None else transcript))
    return list(resp.culprits)


def test_honest_evidence_names_nobody(cluster: Cluster, used: Used) -> None:
    with cluster.coordinator() as c:
        evidence = evidence_from(c, used)
        assert len(evidence) == 6  # each of 3 signers, for each of its 2 peers
        assert all(identify_at(c, used, v, evidence) == [] for v in SIGNERS)


def test_altered_evidence_names_the_relay_not_the_prover(cluster: Cluster, used: Used) -> None:
    with cluster.coordinator() as c:
        evidence = evidence_from(c, used)
        k = next(n for n, e in enumerate(evidence) if (e.prover, e.verifier) == (2, 1))
        ev = codec.from_bytes(Evidence, evidence[k].evidence)
        forged = pb.SignedEvidence()
        forged.CopyFrom(evidence[k])
        forged.evidence = codec.to_bytes(dataclasses.replace(ev, H=ev.H + 1))
        evidence[k] = forged
        exc = rpc_error(lambda: identify_at(c, used, 1, evidence))
    assert exc.code() == grpc.StatusCode.ABORTED
    assert culprit_of(exc) == "0"
    assert "party 2 did not sign" in str(exc.details())


def test_a_wrong_digest_is_refused_by_the_signer(cluster: Cluster, used: Used) -> None:
    """No node vouches for a σ_i under a digest it did not sign: so a relay cannot get
    honest nodes held to another digest."""
    with cluster.coordinator() as c:
        exc = rpc_error(lambda: evidence_from(c, used, hashlib.sha256(b"other").digest()))
    assert exc.code() == grpc.StatusCode.ABORTED
    assert culprit_of(exc) == "0"
    assert "did not sign this digest" in str(exc.details())


def test_a_wrong_path_is_refused_by_the_signer(cluster: Cluster, used: Used) -> None:
    """The path fixes τ and the tweak as much as the digest does: asked about the root
    (or a sibling) for a σ_i released under m/0/7, no node vouches."""
    with cluster.coordinator() as c:
        for path in [(), (0, 8)]:
            exc = rpc_error(functools.partial(evidence_from, c, used, path=path))
            assert exc.code() == grpc.StatusCode.ABORTED
            assert culprit_of(exc) == "0"
            assert "did not sign this digest under this path" in str(exc.details())


def test_a_path_changed_on_the_way_to_a_verifier_names_the_relay(cluster: Cluster,
                                                                 used: Used) -> None:
    """Evidence is signed over the path: relayed to a verifier with another path, it is
    not the prover's word, and the relay is named, not the prover."""
    with cluster.coordinator() as c:
        evidence = evidence_from(c, used)
        exc = rpc_error(lambda: identify_at(c, used, 1, evidence, path=()))
    assert exc.code() == grpc.StatusCode.ABORTED
    assert culprit_of(exc) == "0"
    assert "did not sign for this presignature, request, digest and path" in str(exc.details())


def test_a_dropped_transcript_message_names_the_relay(cluster: Cluster, used: Used) -> None:
    with cluster.coordinator() as c:
        evidence = evidence_from(c, used)
        exc = rpc_error(lambda: identify_at(c, used, 1, evidence, used.transcript[1:]))
    assert exc.code() == grpc.StatusCode.ABORTED
    assert culprit_of(exc) == "0"
    assert "withheld" in str(exc.details())


def test_no_evidence_before_the_share_is_released(cluster: Cluster) -> None:
    """S_i = χ_i·R with σ_i unreleased would be a leak: refused, and the presignature
    is still good afterwards."""
    with cluster.coordinator() as c:
        [public] = c.presign(cluster.key_id, SIGNERS)
        req = pb.SignEvidenceRequest(presignature_id=public.session, request_id="never",
                                     digest=DIGEST)
        exc = rpc_error(lambda: c.clients[1].sign_evidence(req))
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "comes only after σ_i" in str(exc.details())
        sig = c.sign(cluster.key_id, DIGEST, healthy=SIGNERS)
    assert sig.r == nonce_r(cluster, public)
