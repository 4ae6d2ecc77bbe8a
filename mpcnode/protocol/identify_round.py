"""The identification steps as they run between signer nodes (CGGMP21 §4.3, "Identifying
aborts"; DESIGN §2 "Identifiable abort"): the extra round after a failed δ check, and
the merge of disclosed MtA messages that both identification steps need.

``identify.py`` holds the math; it needs the *whole* session's MtA ciphertexts, while
each signer only saw the messages it sent and received. So every signer discloses the
presign/2 direct messages it received, each still carrying its sender's inner signature
(checked by the transport layer before they reach ``merged_view``), and a verifier
joins them with its own view:

- a discloser that leaves out a message it received is named (it withheld evidence);
- two different copies of one sender's message, both signed by that sender, name the
  sender (it equivocated; nobody else can sign for it).

After a failed δ check (``presign.DeltaCheckError``) a signer starts one more round,
"presign/identify" (``PresignRound.IDENTIFY``): a broadcast with its disclosures and,
per verifier, its reopening of δ_i (``identify.delta_evidence``, made with that
verifier's ring-Pedersen parameters). Its ``receive`` never returns: it raises
``ProtocolError`` naming the first culprit. With an honest relay every signer gets the
same round-3 broadcasts, so every honest signer fails the δ check, and runs this round,
together; a sender and relay that equivocate on δ_j can split them (docs/protocol.md,
"Why the last presigning broadcast is not echoed").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from mpcnode.core.errors import ProtocolError
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import identify, presign
from mpcnode.protocol.identify import Evidence
from mpcnode.protocol.key_share import AuxInfo
from mpcnode.protocol.presignature import MtaCiphertexts, PresignView
from mpcnode.protocol.rounds import Inbound, Next, RoundOutput


@dataclass(frozen=True)
class SignedMessage:
    """A presign/2 direct message as its recipient received it: the plaintext payload
    and the sender's inner signature over (session, round, sender, recipient, payload)."""

    sender: int
    recipient: int
    payload: bytes  # codec bytes of presign.Direct2
    signature: bytes


@dataclass(frozen=True)
class DisclosureBcast:
    """Broadcast of "presign/identify": every presign/2 direct message the sender got."""

    received: tuple[SignedMessage, ...]


@dataclass(frozen=True)
class EvidenceDirect:
    """Direct message of "presign/identify": the sender's reopening of δ_i for the recipient."""

    evidence: Evidence


@dataclass(frozen=True)
class DisclosedMta:
    """The ciphertexts of one disclosed presign/2 message whose signature checked out."""

    sender: int
    recipient: int
    mta: MtaCiphertexts


def merged_view(own: PresignView, me: int, disclosed: Mapping[int, Iterable[DisclosedMta]],
                *, missing_culprit: int | None = None) -> PresignView:
    """``own`` view with every signer's disclosed MtA messages added.

    ``disclosed`` maps each other signer to what it disclosed. A message a signer
    received but did not disclose names that signer, or ``missing_culprit`` when the
    disclosures were relayed by someone who could drop them unnoticed (the set as a
    whole is not signed by the discloser then).
    """
    signers = set(own.K)
    rows = {sender: dict(row) for sender, row in own.mta.items()}
    given = {discloser: list(msgs) for discloser, msgs in disclosed.items()}
    for discloser in sorted(given):
        for m in given[discloser]:
            prev = rows.setdefault(m.sender, {}).get(m.recipient)
            if prev is not None and prev != m.mta:
                raise ProtocolError(m.sender, f"signed two different presign/2 messages to "
                                    f"party {m.recipient} (equivocation)")
            rows[m.sender][m.recipient] = m.mta
    for i in sorted(signers - {me}):
        got = {m.sender for m in given.get(i, ()) if m.recipient == i}
        missing = signers - {i} - got
        if missing:
            culprit = i if missing_culprit is None else missing_culprit
            raise ProtocolError(culprit, f"the disclosure of party {i} lacks the presign/2 "
                                f"message party {min(missing)} sent it (withheld)")
    return dataclasses.replace(own, mta=rows)


@dataclass(frozen=True)
class DeltaIdentification:
    """A signer's state in "presign/identify", after its δ check failed."""

    party: int
    session: bytes
    aux: AuxInfo = field(repr=False)
    view: PresignView = field(repr=False)  # own view at the failed δ check

    def receive(self, inbound: Inbound[Sequence[DisclosedMta], EvidenceDirect],
                rng: RandomSource) -> NoReturn:
        """Name the first culprit: an equivocating sender or a withholding discloser,
        else the first signer whose δ_j its reopened ciphertexts contradict (or whose
        evidence is missing or fails).

        ``inbound.broadcasts`` holds each other signer's disclosed MtA messages, whose
        inner signatures the transport checked (a ``DisclosureBcast`` on the wire)."""
        view = merged_view(self.view, self.party, inbound.broadcasts)
        evidence = {j: d.evidence for j, d in inbound.direct.items()}
        culprits = identify.delta_culprits(self.aux, self.session, view, evidence)
        if not culprits:
            raise ProtocolError(None, "δ check failed, yet every signer's δ_j matches its "
                                "ciphertexts")
        j = culprits[0]
        raise ProtocolError(j, f"δ check failed: party {j}'s δ_{j} does not match its "
                            "ciphertexts (or its evidence is missing or invalid)")


def start_delta(
    failure: presign.DeltaCheckError, received: Iterable[SignedMessage], rng: RandomSource
) -> Next[DeltaIdentification, DisclosureBcast, EvidenceDirect]:
    """The "presign/identify" messages of a signer whose δ check failed.

    U_i only involves messages i received and sent (``identify._reopened``), so the
    prover's own view suffices for its evidence; the merged view is the verifier's job.
    """
    state = failure.state
    cfg = state.own.cfg  # the round-3 state keeps the config and γ_i for this step
    me = cfg.party
    view = state.view(failure.round3)
    evidence = identify.delta_evidence(me, state.own.sid, cfg.aux, view, state.own.gamma, rng)
    out = RoundOutput(DisclosureBcast(tuple(received)),
                      {k: EvidenceDirect(ev) for k, ev in sorted(evidence.items())})
    return Next(DeltaIdentification(me, state.own.sid, cfg.aux, view), out)
