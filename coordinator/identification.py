"""The coordinator's part in naming the signer whose σ_j broke a signature (CGGMP21
§4.3, "Identifying aborts"; DESIGN §2), and the presigning transcript it keeps for it.

At the end of each presigning session every node discloses the presign/2 direct
messages it received (signed by their senders). The coordinator checks them at once
(a node that withholds or garbles one is named then, and its presignature never used)
and keeps them with the presignature. If a combined signature does not verify it asks
every signer for signed evidence on its σ_j (SignEvidence), hands every signer the
evidence made for it with the kept transcript (IdentifySigners), and reports the party
named by the most verifiers. The verdicts are the nodes' own: evidence is signed by its
prover and the transcript by the senders, so a coordinator that tampers gets itself
named, not an honest signer. Only what the coordinator saw with its own eyes is used on
top: a signer that will not back its σ_j, or backs another σ_j than it released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import grpc

from coordinator.accusations import culprit_of, majority
from coordinator.node_client import NodeClient
from mpcnode.core.errors import ProtocolError, culprit_name
from mpcnode.daemon.sign_identification import entry_signed
from mpcnode.protocol.presign import PresignRound
from mpcnode.protocol.presignature import PresignaturePublic
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityPublic

T = TypeVar("T")
Attempt = Callable[[Iterable[int], Callable[[NodeClient], T]], dict[int, T | grpc.RpcError]]


def mta_transcript(signers: Sequence[int], session_id: bytes,
                   disclosed: Iterable[pb.Envelope],
                   identities: Mapping[int, IdentityPublic]) -> list[pb.Envelope]:
    """The presign/2 messages of a finished presigning session, one per ordered pair of
    signers, each signed by its sender; raises ProtocolError naming the signer that did
    not disclose one it received (the disclosing node is its recipient)."""
    kept: dict[tuple[int, int], pb.Envelope] = {}
    for e in disclosed:
        if e.round != PresignRound.MTA:
            continue
        if (e.session_id != session_id or e.sender not in signers or e.sender == e.recipient
                or not envelope.verify_transcript_entry(identities, e)):
            raise ProtocolError(e.recipient, f"disclosed a presign/2 message of party "
                                f"{e.sender} that it did not sign for this session")
        kept.setdefault((e.sender, e.recipient), e)
    for i in signers:
        missing = [j for j in signers if j != i and (j, i) not in kept]
        if missing:
            raise ProtocolError(i, f"did not disclose the presign/2 message party "
                                f"{missing[0]} sent it (needed to identify a cheating signer)")
    return [kept[pair] for pair in sorted(kept) if pair[1] in signers]


def identify_bad_share(
    attempt: Attempt[object], public: PresignaturePublic, request_id: str, digest: bytes,
    path: tuple[int, ...], released: Mapping[int, bytes],
    transcript: Sequence[pb.Envelope] | None,
    identities: Mapping[int, IdentityPublic],
) -> tuple[int | None, str]:
    """(culprit, reason) after ``combine`` found the signature invalid. ``released`` is
    each signer's σ_j as it answered Sign; ``attempt`` runs a call at several nodes and
    returns each answer or gRPC error. ``path`` is the BIP32 path signed under: with the
    digest it fixes the re-randomized nonce every node re-derives itself."""
    head = "combined signature does not verify"
    if transcript is None:
        return None, (f"{head}; this coordinator does not hold the presigning transcript of "
                      "the presignature (pool rebuilt after a restart), so the signer at "
                      "fault cannot be identified")
    ereq = pb.SignEvidenceRequest(presignature_id=public.session, request_id=request_id,
                                  digest=digest, path=list(path))
    answers = attempt(public.signers, lambda c: c.sign_evidence(ereq))
    entries: list[pb.SignedEvidence] = []
    for i in public.signers:
        got = answers[i]
        if isinstance(got, grpc.RpcError):
            return i, (f"{head}, and party {i} did not back its σ_{i} with evidence: "
                       f"{got.details()}")
        assert isinstance(got, pb.SignEvidenceResponse)
        bad = _unsigned_entry(i, got, public, request_id, digest, path, identities)
        if bad:
            return i, f"{head}, and party {i} {bad}"
        entries.extend(got.evidence)

    def ask(c: NodeClient) -> pb.IdentifySignersResponse:
        return c.identify_signers(pb.IdentifySignersRequest(
            presignature_id=public.session, request_id=request_id, digest=digest,
            path=list(path), evidence=[e for e in entries if e.verifier == c.party],
            disclosed=transcript))

    verdicts = attempt(public.signers, ask)
    verdict = majority({v: _named(r) for v, r in verdicts.items()})
    said = {v: (list(r.culprits) if isinstance(r, pb.IdentifySignersResponse)
                else f"error: {_details(r)}") for v, r in sorted(verdicts.items())}
    if verdict.culprit is not None:
        return verdict.culprit, (f"{head}: {culprit_name(verdict.culprit)}'s σ contradicts "
                                 f"its presignature share ({verdict.summary()}; "
                                 f"verdicts {said})")
    for i in public.signers:
        if any(e.sigma != released[i] for e in entries if e.prover == i):
            return i, (f"{head}: party {i} released one σ_{i} and signed evidence on "
                       f"another (verdicts {said})")
    return None, f"{head}, yet no verifier finds a signer at fault (verdicts {said})"


def _unsigned_entry(i: int, got: pb.SignEvidenceResponse, public: PresignaturePublic,
                    request_id: str, digest: bytes, path: tuple[int, ...],
                    identities: Mapping[int, IdentityPublic]) -> str:
    """Why party i's evidence is not its signed evidence for every other signer, or ""."""
    verifiers = sorted(e.verifier for e in got.evidence)
    if verifiers != [j for j in public.signers if j != i]:
        return f"gave evidence for verifiers {verifiers}"
    for e in got.evidence:
        if not entry_signed(identities[i], public.session, request_id, digest, path, e):
            return f"gave evidence for party {e.verifier} that it did not sign"
    return ""


def _named(r: object) -> list[int | None]:
    """The parties a verifier's answer names: its verdict, or the culprit of its abort."""
    if isinstance(r, pb.IdentifySignersResponse):
        return list(r.culprits)
    if isinstance(r, grpc.RpcError) and r.code() == grpc.StatusCode.ABORTED:
        return [culprit_of(r)]
    return []


def _details(r: object) -> str:
    return str(r.details()) if isinstance(r, grpc.RpcError) else ""
