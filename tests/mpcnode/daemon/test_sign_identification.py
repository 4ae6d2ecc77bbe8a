"""Identifiable abort through the node's session layer (CGGMP21 §4.3; DESIGN §2): a
signer that lies about δ_i in presign round 3 passes every proof, fails only the δ
check, and the extra "presign/identify" round, run over signed, encrypted envelopes as
between real nodes, names it — as do the disclosure rules: a forged or withheld MtA
message names its discloser, two signed copies of one message name their sender.

Signers 1, 2, 3 of a 3-of-3 key (TEST ONLY primes); party 2 lies about δ_2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from coordinator.accusations import majority
from mpcnode.core.errors import ProtocolError
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto import codec
from mpcnode.crypto.group import Q
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import identify_round, presign
from mpcnode.protocol.identify_round import DisclosedMta, DisclosureBcast, SignedMessage
from mpcnode.protocol.key_share import AuxInfo, KeyShare
from mpcnode.protocol.presignature import Presignature
from mpcnode.protocol.registry import PRESIGN
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.rpc import node_pb2 as pb
from mpcnode.sim.simulator import run_aux_info, run_keygen
from mpcnode.transport import envelope
from mpcnode.transport.disclosures import open_disclosed_mta
from mpcnode.transport.identity import IdentityKeys, IdentityPublic
from mpcnode.transport.sessions import Session, start_session
from test_only.seeded_random import SeededRandom
from testing import fixture_keys

SIGNERS = (1, 2, 3)
LIAR = 2
Outbound = dict[int, list[pb.Envelope]]


@dataclass(frozen=True)
class Material:
    shares: dict[int, KeyShare]
    aux: dict[int, AuxInfo]
    keys: dict[int, IdentityKeys]

    def peers(self, i: int) -> dict[int, IdentityPublic]:
        return {j: k.public for j, k in self.keys.items() if j != i}


@pytest.fixture(scope="module")
def material() -> Material:
    primes = fixture_keys.test_primes(1024)
    aux = run_aux_info(SIGNERS, b"", DEFAULT_PROFILE,
                       {i: (primes[2 * i], primes[2 * i + 1]) for i in SIGNERS},
                       b"identify-net/aux".ljust(32, b"\0"), SeededRandom(b"identify-net/aux"))
    shares = run_keygen(SIGNERS, 3, b"identify-net/key".ljust(32, b"\0"),
                        SeededRandom(b"identify-net/key"))
    return Material(shares, aux, {i: IdentityKeys.generate(i) for i in SIGNERS})


class DeltaLiar(Session[Presignature]):
    """TEST ONLY: a signer that adds 1 to its δ_i in the round-3 broadcast and keeps the
    lie in its own state too (so it also fails the δ check and joins identification);
    every proof it makes stays honest."""

    def seal(self, out: RoundOutput[object, object]) -> list[pb.Envelope]:
        if isinstance(out.broadcast, presign.Bcast3):
            lie = dataclasses.replace(out.broadcast, delta=(out.broadcast.delta + 1) % Q)
            assert isinstance(self.state, presign.Round3)
            self.state = dataclasses.replace(self.state, own_msg=lie)
            out = dataclasses.replace(out, broadcast=lie)
        return super().seal(out)


def start_presign(m: Material, nonce: bytes, rng: RandomSource,
                  liar: int | None = None) -> tuple[dict[int, Session[Presignature]], Outbound]:
    """Sessions as ``SignerNode.start`` makes them (``start_session``)."""
    sessions, out = {}, {}
    for i in SIGNERS:
        cfg = presign.PresignConfig(m.shares[i], m.aux[i], SIGNERS, nonce)
        s, out[i] = start_session(PRESIGN, nonce, m.keys[i], m.peers(i), cfg, rng)
        if i == liar:
            s.__class__ = DeltaLiar
        sessions[i] = s
    return sessions, out


def inbound_for(i: int, out: Outbound) -> list[pb.Envelope]:
    """What an honest relay hands party i."""
    return [e for j, envs in out.items() if j != i for e in envs if e.recipient in (0, i)]


def relay_round(sessions: dict[int, Session[Presignature]], out: Outbound,
                rng: RandomSource) -> Outbound:
    return {i: s.deliver(inbound_for(i, out), rng) for i, s in sessions.items()}


@dataclass
class DeltaFailure:
    """Every signer waiting in "presign/identify", and what each sent for that round."""

    material: Material
    sessions: dict[int, Session[Presignature]]
    out: Outbound

    def verdict(self, i: int, out: Outbound | None = None) -> ProtocolError:
        with pytest.raises(ProtocolError) as exc:
            self.sessions[i].deliver(inbound_for(i, out or self.out), SeededRandom(b"x"))
        return exc.value

    def disclosure(self, i: int) -> DisclosureBcast:
        [b] = [e for e in self.out[i] if e.recipient == 0]
        return codec.from_bytes(DisclosureBcast, b.body)

    def with_disclosure(self, i: int, edit: Callable[[list[SignedMessage]], None]) -> Outbound:
        """Signer i's identify broadcast with its list of disclosed messages edited, and
        re-signed by i (it is i that lies here, not the relay)."""
        received = list(self.disclosure(i).received)
        edit(received)
        env = envelope.seal_broadcast(self.material.keys[i], self.sessions[i].session_id,
                                      presign.PresignRound.IDENTIFY,
                                      codec.to_bytes(DisclosureBcast(tuple(received))))
        return {**self.out, i: [env, *(e for e in self.out[i] if e.recipient != 0)]}


@pytest.fixture(scope="module")
def delta_failure(material: Material) -> DeltaFailure:
    rng = SeededRandom(b"identify-net/delta")
    sessions, out = start_presign(material, b"identify-net/delta".ljust(32, b"\0"), rng,
                                  liar=LIAR)
    for _ in range(3):
        out = relay_round(sessions, out, rng)
    return DeltaFailure(material, sessions, out)


# --- the δ liar ------------------------------------------------------------------------------


def test_honest_sessions_finish_without_identification(material: Material) -> None:
    """Control: the same sessions without the lie end with one presignature."""
    rng = SeededRandom(b"identify-net/honest")
    sessions, out = start_presign(material, b"identify-net/honest".ljust(32, b"\0"), rng)
    for _ in range(3):
        out = relay_round(sessions, out, rng)
    assert all(s.done and out[i] == [] for i, s in sessions.items())
    results = {i: s.result for i, s in sessions.items()}
    assert all(isinstance(p, Presignature) for p in results.values())
    assert len({p.public.R for p in results.values() if p is not None}) == 1


def test_every_signer_moves_to_the_identify_round(delta_failure: DeltaFailure) -> None:
    for i, s in delta_failure.sessions.items():
        assert not s.done
        assert s.round_spec.name == "presign/identify"
        rounds = {(e.round, e.recipient) for e in delta_failure.out[i]}
        assert rounds == {("presign/identify", j) for j in (0, *SIGNERS) if j != i}
        # the broadcast discloses exactly the MtA messages i received, one per peer
        got = {(m.sender, m.recipient) for m in delta_failure.disclosure(i).received}
        assert got == {(j, i) for j in SIGNERS if j != i}


def test_both_honest_signers_name_the_liar(delta_failure: DeltaFailure) -> None:
    for i in SIGNERS:
        if i == LIAR:
            continue
        err = delta_failure.verdict(i)
        assert err.culprit == LIAR
        assert f"δ check failed: party {LIAR}'s δ_{LIAR} does not match" in err.reason


def test_the_liar_itself_finds_nobody_else_at_fault(delta_failure: DeltaFailure) -> None:
    err = delta_failure.verdict(LIAR)
    assert err.culprit is None
    assert "every signer's δ_j matches" in err.reason


def test_forged_mta_disclosure_names_the_discloser(delta_failure: DeltaFailure) -> None:
    """Party 3 discloses party 1's message to it with D changed: 1's signature fails."""

    def forge(received: list[SignedMessage]) -> None:
        k = next(n for n, m in enumerate(received) if m.sender == 1)
        msg = codec.from_bytes(presign.Direct2, received[k].payload)
        forged = codec.to_bytes(dataclasses.replace(msg, D=msg.D + 1))
        received[k] = dataclasses.replace(received[k], payload=forged)

    err = delta_failure.verdict(1, delta_failure.with_disclosure(3, forge))
    assert err.culprit == 3
    assert "presign/2 message 1→3 that party 1 did not sign (forged)" in err.reason


def test_withheld_mta_message_names_the_discloser(delta_failure: DeltaFailure) -> None:
    def withhold(received: list[SignedMessage]) -> None:
        received[:] = [m for m in received if m.sender != LIAR]

    err = delta_failure.verdict(1, delta_failure.with_disclosure(3, withhold))
    assert err.culprit == 3
    assert f"lacks the presign/2 message party {LIAR} sent it (withheld)" in err.reason


def test_message_of_another_round_disclosed_names_the_discloser(
        delta_failure: DeltaFailure) -> None:
    """A genuine presign/1 direct message (validly signed for its own round) offered as
    an MtA message does not verify as presign/2."""
    [p1] = [e for e in delta_failure.sessions[3].disclosed
            if e.round == "presign/1" and e.sender == 1]

    def swap(received: list[SignedMessage]) -> None:
        k = next(n for n, m in enumerate(received) if m.sender == 1)
        received[k] = SignedMessage(p1.sender, p1.recipient, p1.body, p1.signature)

    err = delta_failure.verdict(1, delta_failure.with_disclosure(3, swap))
    assert err.culprit == 3
    assert "did not sign (forged)" in err.reason


def test_two_signed_copies_of_one_message_name_their_sender(
        delta_failure: DeltaFailure) -> None:
    """Colluding with 3, the liar 2 signs a second, different message 2→1, and 3
    discloses it: node 1's own copy differs, and only 2 can have signed both."""
    m = delta_failure.material
    [mine] = [e for e in delta_failure.sessions[1].disclosed
              if e.round == "presign/2" and e.sender == LIAR]
    msg = codec.from_bytes(presign.Direct2, mine.body)
    other = codec.to_bytes(dataclasses.replace(msg, F=msg.F + 1))
    sealed = envelope.seal_direct(m.keys[LIAR], m.keys[1].public, mine.session_id, "presign/2",
                                  other)
    sig = envelope.open_envelope(m.keys[1], m.peers(1), mine.session_id, "presign/2",
                                 sealed).inner_signature

    def add(received: list[SignedMessage]) -> None:
        received.append(SignedMessage(LIAR, 1, other, sig))

    err = delta_failure.verdict(1, delta_failure.with_disclosure(3, add))
    assert err.culprit == LIAR
    assert "equivocation" in err.reason


def test_a_relay_cannot_alter_a_disclosure(delta_failure: DeltaFailure) -> None:
    """The disclosure travels in a signed broadcast: a changed one blames the relay."""
    out = dict(delta_failure.out)
    env = pb.Envelope()
    [b] = [e for e in out[3] if e.recipient == 0]
    env.CopyFrom(b)
    env.body = codec.to_bytes(DisclosureBcast(delta_failure.disclosure(3).received[:1]))
    out[3] = [env, *(e for e in out[3] if e.recipient != 0)]
    assert delta_failure.verdict(1, out).culprit == 0


# --- pure pieces ------------------------------------------------------------------------------


def test_merged_view_blames_the_relay_when_told(delta_failure: DeltaFailure) -> None:
    """When the disclosures come unsigned as a set (the σ path, relayed by the
    coordinator), a missing message names whoever relayed them."""
    state = delta_failure.sessions[1].state
    assert isinstance(state, identify_round.DeltaIdentification)
    own = state.view
    full = _opened(delta_failure, 1)
    merged = identify_round.merged_view(own, 1, full)
    assert set(merged.mta[2]) == {1, 3} and set(merged.mta[3]) == {1, 2}
    partial = {**full, 3: full[3][:1]}
    with pytest.raises(ProtocolError) as exc:
        identify_round.merged_view(own, 1, partial, missing_culprit=0)
    assert exc.value.culprit == 0
    with pytest.raises(ProtocolError) as exc:
        identify_round.merged_view(own, 1, partial)
    assert exc.value.culprit == 3


def _opened(f: DeltaFailure, verifier: int) -> dict[int, list[DisclosedMta]]:
    """The other signers' disclosures as ``verifier`` checks them."""
    signers = {j: k.public for j, k in f.material.keys.items()}
    sid = f.sessions[verifier].session_id
    out = {}
    for j in SIGNERS:
        if j == verifier:
            continue
        out[j] = [open_disclosed_mta(signers, sid, j, pb.Envelope(
            session_id=sid, round="presign/2", sender=m.sender, recipient=m.recipient,
            body=m.payload, signature=m.signature)) for m in f.disclosure(j).received]
    return out


@pytest.mark.parametrize(("accusations", "culprit", "tie"), [
    ({1: [2], 3: [2], 2: [None]}, 2, False),  # the liar names nobody: not a vote
    ({1: [2], 3: [2], 2: [1]}, 2, False),  # the liar blames someone else: outvoted
    ({1: [2], 2: [1]}, 1, True),  # one against one: lowest id, and said so
    ({1: [1], 3: [None]}, None, False),  # a self-accusation does not count
    ({1: [0], 2: [3]}, 0, True),  # the coordinator (0) is a culprit like any other
    ({}, None, False),
])
def test_majority_of_accusations(accusations: dict[int, list[int | None]],
                                 culprit: int | None, tie: bool) -> None:
    got = majority(accusations)
    assert got.culprit == culprit
    assert got.tie == tie
    if tie:
        assert "tie" in got.summary()


def test_majority_summary_lists_accusers_per_accused() -> None:
    got = majority({1: [2], 3: [2], 2: [1]})
    assert got.votes == {2: [1, 3], 1: [2]}
    assert got.summary() == "accusations: {2: [1, 3], 1: [2]}"
