"""A signer node's part in naming the signer whose σ_j broke a signature (CGGMP21 §4.3,
"Identifying aborts"; DESIGN §2), behind the SignEvidence and IdentifySigners RPCs.

SignEvidence: a signer that has released σ_i reopens χ_i for every other signer
(``identify.sign_evidence``; S_i = χ_i·R is determined by public values once σ_i is out,
so it is refused before). It first re-derives the re-randomized signature (τ, R', e_P;
``sign.rerandomize``) of the digest and path it is asked about and checks σ_i against
it, then signs each piece of evidence over (presignature, request id, digest, path,
prover, verifier, σ_i, evidence) with its identity key. So what reaches a verifier
through the coordinator is the signer's own word: a relay that alters σ_j, the
evidence, the digest or the path is named (culprit 0), and a signer is never held to a
digest or path it did not sign.

IdentifySigners: a verifier checks those signatures and the disclosed presign/2
messages (signed by their senders), merges them into the session's full view and runs
``identify.sign_culprits``. The disclosures reach it as a set assembled by the
coordinator, so a missing one names the coordinator, not the signer.
"""

from __future__ import annotations

from collections.abc import Mapping

from mpcnode.core.errors import COORDINATOR, ProtocolError, UsageError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.random_source import RandomSource
from mpcnode.crypto.transcript import Transcript
from mpcnode.protocol import identify
from mpcnode.protocol.identify import Evidence
from mpcnode.protocol.identify_round import merged_view
from mpcnode.protocol.key_share import AuxInfo
from mpcnode.protocol.presignature import PresignaturePublic
from mpcnode.protocol.sign import Rerandomized, SignatureShare, share_fits
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport.disclosures import disclosed_by_recipient, open_disclosed_mta
from mpcnode.transport.identity import IdentityKeys, IdentityPublic, verify

_DOMAIN = "mpc-identify/sign-evidence/v2"  # v2: the path is signed too (re-randomization)


def statement(presig_id: bytes, request_id: str, digest: bytes, path: tuple[int, ...],
              prover: int, verifier: int, sigma: bytes, evidence: bytes) -> bytes:
    """What a signer signs for one verifier's evidence (framed: no ambiguous joins)."""
    t = Transcript(_DOMAIN)
    t.append_bytes("presignature", presig_id)
    t.append_str("request", request_id)
    t.append_bytes("digest", digest)
    t.append_ints("path", path)
    t.append_int("prover", prover)
    t.append_int("verifier", verifier)
    t.append_bytes("sigma", sigma)
    t.append_bytes("evidence", evidence)
    return t.challenge_bytes("statement", 32)


def entry_signed(prover: IdentityPublic, presig_id: bytes, request_id: str, digest: bytes,
                 path: tuple[int, ...], e: pb.SignedEvidence) -> bool:
    """Is ``e`` the prover's signed evidence for this presignature, request, digest and
    path?"""
    return e.prover == prover.party and verify(
        prover, statement(presig_id, request_id, digest, path, e.prover, e.verifier, e.sigma,
                          e.evidence), e.signature)


def sign_entries(keys: IdentityKeys, presig_id: bytes, request_id: str, rr: Rerandomized,
                 sigma: int, evidence: Mapping[int, Evidence]) -> list[pb.SignedEvidence]:
    """One signed entry per verifier (no check of σ: see ``evidence_for_share``)."""
    me, raw_sigma = keys.public.party, sigma.to_bytes(32, "big")
    out = []
    for k, ev in sorted(evidence.items()):
        raw = codec.to_bytes(ev)
        sig = keys.sign(statement(presig_id, request_id, rr.digest, rr.path, me, k,
                                  raw_sigma, raw))
        out.append(pb.SignedEvidence(prover=me, verifier=k, sigma=raw_sigma, evidence=raw,
                                     signature=sig))
    return out


def evidence_for_share(keys: IdentityKeys, presig: PresignaturePublic, aux: AuxInfo,
                       x_effective: int, share: SignatureShare, request_id: str,
                       rr: Rerandomized, rng: RandomSource) -> list[pb.SignedEvidence]:
    """This signer's signed evidence for the σ_i it released, if σ_i fits the
    re-randomized signature ``rr`` (its digest and path)."""
    if presig.view is None:
        raise UsageError(f"presignature {presig.session.hex()} has no stored view")
    me = keys.public.party
    evidence = identify.sign_evidence(me, aux, presig, x_effective, presig.view, rng)
    S = next(iter(evidence.values())).S  # χ_i·R: the same in every verifier's copy
    if not share_fits(presig, me, rr, share.sigma, S):
        raise ProtocolError(COORDINATOR, f"party {me} did not sign this digest under this "
                            f"path with presignature {presig.session.hex()[:16]}: its "
                            f"σ_{me} does not fit them")
    return sign_entries(keys, presig.session, request_id, rr, share.sigma, evidence)


def identify_signers(
    me: int, identities: Mapping[int, IdentityPublic], presig: PresignaturePublic,
    aux: AuxInfo, effective_shares: Mapping[int, Point], req: pb.IdentifySignersRequest,
    rr: Rerandomized,
) -> list[int]:
    """The signers whose σ_j contradicts their presignature share, as this verifier sees;
    ``rr`` is the re-randomized signature of ``req``'s digest and path, as this verifier
    derived it."""
    if presig.view is None:
        raise UsageError(f"presignature {presig.session.hex()} has no stored view")
    shares, evidence = _checked_evidence(me, identities, presig, req, rr)
    signers = {j: identities[j] for j in presig.signers}
    opened = [open_disclosed_mta(signers, presig.session, COORDINATOR, e)
              for e in req.disclosed]
    view = merged_view(presig.view, me, disclosed_by_recipient(opened),
                       missing_culprit=COORDINATOR)
    return identify.sign_culprits(aux, presig, effective_shares, view, shares, evidence, rr)


def _checked_evidence(
    me: int, identities: Mapping[int, IdentityPublic], presig: PresignaturePublic,
    req: pb.IdentifySignersRequest, rr: Rerandomized,
) -> tuple[dict[int, SignatureShare], dict[int, Evidence]]:
    """Each other signer's σ_j and evidence for ``me``, as that signer signed them."""
    others = [j for j in presig.signers if j != me]
    by_prover: dict[int, pb.SignedEvidence] = {}
    for e in req.evidence:
        if e.prover not in others or e.verifier != me or e.prover in by_prover:
            raise ProtocolError(COORDINATOR, f"relayed evidence of party {e.prover} for "
                                f"party {e.verifier} to party {me}, or twice")
        by_prover[e.prover] = e
    shares, evidence = {}, {}
    for j in others:
        e = by_prover.get(j)
        if e is None:
            raise ProtocolError(COORDINATOR, f"relayed no identification evidence of party {j}")
        if not entry_signed(identities[j], presig.session, req.request_id, rr.digest,
                            rr.path, e):
            raise ProtocolError(COORDINATOR, f"relayed identification evidence that party {j} "
                                "did not sign for this presignature, request, digest and "
                                "path (tampered)")
        sigma = int.from_bytes(e.sigma, "big")
        if len(e.sigma) != 32 or sigma >= Q:
            raise ProtocolError(j, f"signed a malformed σ_{j}")
        try:
            evidence[j] = codec.from_bytes(Evidence, e.evidence)
        except (codec.DecodeError, ValueError, TypeError) as exc:
            raise ProtocolError(j, f"signed malformed identification evidence: {exc}") from exc
        shares[j] = SignatureShare(j, presig.session, sigma)
    return shares, evidence
