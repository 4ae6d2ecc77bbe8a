"""Reshare (verifiable secret redistribution, Wong–Wang–Wing 2002, tss-lib's resharing
shape): the key moves to a new committee and/or threshold with the public key, chain code
and key id unchanged; any t' new members sign; old and new shares do not mix; every check
of a peer's message raises ProtocolError naming that peer."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Any

import pytest

from mpcnode.core.errors import ProofError, ProtocolError, UsageError
from mpcnode.crypto import bip32, hash_commitment
from mpcnode.crypto.group import Point, Q
from mpcnode.protocol import presign, reshare
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData, Reshared
from mpcnode.protocol.registry import RESHARE, ProtocolName, session_protocol
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.protocol.session_params import ClusterView, ParameterRefused, SessionParams
from mpcnode.protocol.sign import verify
from mpcnode.sim.simulator import run_aux_info, run_presign, run_reshare, run_sign
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    PROFILE,
    Key,
    Outputs,
    Trace,
    deliver,
    interpolated_point,
    party_primes,
    rerun_round,
    run_traced,
    with_broadcast,
    with_direct,
)

NONCE = b"reshare-nonce".ljust(32, b"\0")
REPLACE_5_BY_6 = (1, 2, 3, 4, 6)


def reshare_trace(old: dict[int, KeyShare], new_parties: tuple[int, ...], t: int,
                  tag: bytes = b"rs") -> Trace:
    rng = SeededRandom(b"test_reshare/" + tag)
    c = reshare.Committees(next(iter(old.values())).public, tuple(sorted(old)), new_parties, t)
    starts = {i: reshare.start(reshare.ReshareConfig(i, c, NONCE, old.get(i)), rng)
              for i in c.parties}
    return run_traced(starts, rng)


def new_shares(out: dict[int, Reshared]) -> dict[int, KeyShare]:
    return {i: o.share for i, o in out.items() if o.share is not None}


def sign_with(shares: dict[int, KeyShare], aux: dict[int, AuxInfo], signers: tuple[int, ...],
              tag: bytes) -> bool:
    """Presign and sign with ``signers``; whether the signature verifies under the key's
    BIP32 child (0, 7)."""
    digest = hashlib.sha256(b"reshare/" + tag).digest()
    presigs = run_presign({i: shares[i] for i in signers}, aux, signers, tag.ljust(32, b"\0"),
                          SeededRandom(b"presign/" + tag))
    sig = run_sign(presigs, {i: shares[i] for i in signers}, digest, (0, 7))
    public = shares[signers[0]].public
    child = bip32.derive(public.public_key, public.chain_code, (0, 7)).public_key
    return verify(child.to_bytes(), digest, sig)


@pytest.fixture(scope="module")
def replaced(key35: Key) -> Trace:
    """3-of-5 → 3-of-5, node 5 replaced by node 6, dealt by exactly t = 3 old holders."""
    return reshare_trace({i: key35.shares[i] for i in (1, 2, 4)}, REPLACE_5_BY_6, 3)


@pytest.fixture(scope="module")
def aux_with_6() -> dict[int, AuxInfo]:
    """Fresh aux info for a signer set that includes the new node 6."""
    parties = (1, 4, 6)
    return run_aux_info(parties, b"", PROFILE, {i: party_primes(i) for i in parties},
                        b"aux-146".ljust(32, b"\0"), SeededRandom(b"aux-146"))


# --- honest runs ----------------------------------------------------------------------------

CASES = [  # (old holders taking part, new committee, t')
    ((1, 2, 4), REPLACE_5_BY_6, 3),  # exactly t old holders, node 5 replaced by 6
    ((1, 2, 3, 4, 5), (1, 2, 3, 4, 5), 3),  # all old holders, same committee (a refresh)
    ((2, 3, 5), (1, 2, 3, 4, 5, 6), 4),  # → 4-of-6, exactly t dealers
    ((1, 3, 4, 5), (1, 2, 3), 2),  # → 2-of-3, more than t dealers, 4 and 5 leave
]


@pytest.mark.parametrize(("dealers", "new_parties", "t"), CASES,
                         ids=["replace-5-by-6", "5-of-5-dealers", "to-4-of-6", "to-2-of-3"])
def test_public_key_kept_any_new_subset_interpolates(
        key35: Key, dealers: tuple[int, ...], new_parties: tuple[int, ...], t: int) -> None:
    old = key35.public
    out = run_reshare({i: key35.shares[i] for i in dealers}, new_parties, t, NONCE,
                      SeededRandom(b"honest" + bytes(dealers)))
    new = out[new_parties[0]].public
    assert all(o.public == new for o in out.values())
    assert (new.public_key, new.chain_code, new.key_id) == (old.public_key, old.chain_code,
                                                             old.key_id)
    assert (new.threshold, new.parties, new.epoch) == (t, new_parties, old.epoch + 1)
    shares = new_shares(out)
    assert tuple(sorted(shares)) == new_parties
    for i, s in shares.items():
        assert Point.base_mul(s.x) == new.public_shares[i]
    for subset in itertools.combinations(new_parties, t):
        assert interpolated_point({j: shares[j] for j in subset}) == old.public_key
    for subset in itertools.combinations(new_parties, t - 1):
        if subset:
            assert interpolated_point({j: shares[j] for j in subset}) != old.public_key
    leaving = tuple(i for i in dealers if i not in new_parties)
    assert all(o.leaving == leaving for o in out.values())
    assert all(out[i].share is None for i in leaving)


def test_reshare_again_keeps_key_id_and_counts_epochs(key35: Key) -> None:
    first = new_shares(run_reshare({i: key35.shares[i] for i in (1, 2, 3)}, (1, 2, 3), 2,
                                   NONCE, SeededRandom(b"first")))
    second = new_shares(run_reshare(first, (2, 3, 7), 2, NONCE, SeededRandom(b"second")))
    assert second[7].public.epoch == 2
    assert second[7].public.key_id == key35.public.key_id
    assert second[7].public.public_key == key35.public.public_key


def test_new_shares_sign_with_node_6(key35: Key, replaced: Trace,
                                     aux_with_6: dict[int, AuxInfo]) -> None:
    shares = new_shares(replaced.results)
    assert sign_with(shares, aux_with_6, (1, 4, 6), b"new-146")


@pytest.mark.parametrize(("dealers", "new_parties", "t", "signers"), [
    ((2, 3, 5), (1, 2, 3, 4, 5, 6), 4, (1, 2, 3, 5)),
    ((1, 3, 4, 5), (1, 2, 3), 2, (2, 3)),
], ids=["4-of-6", "2-of-3"])
def test_new_threshold_signs(key35: Key, aux5: dict[int, AuxInfo], aux3: dict[int, AuxInfo],
                             dealers: tuple[int, ...], new_parties: tuple[int, ...], t: int,
                             signers: tuple[int, ...]) -> None:
    shares = new_shares(run_reshare({i: key35.shares[i] for i in dealers}, new_parties, t,
                                    NONCE, SeededRandom(b"sign" + bytes(dealers))))
    assert sign_with(shares, aux5 if len(new_parties) > 3 else aux3, signers,
                     b"t=%d" % t)


def test_old_and_new_shares_do_not_interpolate(key35: Key, replaced: Trace) -> None:
    shares, X = new_shares(replaced.results), key35.public.public_key
    for old_part in (1, 2, 3):
        for a, b in itertools.combinations([p for p in (1, 2, 4, 6) if p != old_part], 2):
            mixed = {old_part: key35.shares[old_part], a: shares[a], b: shares[b]}
            assert interpolated_point(mixed) != X


def test_presign_refuses_old_and_new_shares_mixed(key35: Key, aux5: dict[int, AuxInfo],
                                                  replaced: Trace) -> None:
    """Party 1 still holds its old share, parties 2 and 4 the new ones: their session ids
    bind different shares digests, so the peers' Π^enc do not verify at party 1."""
    shares = new_shares(replaced.results)
    mixed = {1: key35.shares[1], 2: shares[2], 4: shares[4]}
    rng = SeededRandom(b"mixed")
    nonce = b"mixed".ljust(32, b"\0")
    starts = {i: presign.start(presign.PresignConfig(s, aux5[i], (1, 2, 4), nonce), rng)
              for i, s in mixed.items()}
    outs = {i: o for i, (_, o) in starts.items()}
    with pytest.raises(ProofError) as exc:
        deliver(starts[1][0], 1, outs, rng)
    assert exc.value.culprit == 2 and exc.value.proof == "Π^enc"


def test_old_epoch_share_with_forged_new_public_data_does_not_sign(
        key35: Key, aux5: dict[int, AuxInfo], replaced: Trace) -> None:
    """A node that kept its old x_1 and dressed it in the new public data runs presign
    with the others, but the signature does not verify: the combiner refuses it."""
    shares = new_shares(replaced.results)
    forged = {1: KeyShare(1, shares[1].public, key35.shares[1].x), 2: shares[2], 4: shares[4]}
    with pytest.raises(ProtocolError):
        sign_with(forged, aux5, (1, 2, 4), b"forged")


# --- rejections: each names the culprit -------------------------------------------------------

DEALER, HONEST_NEW = 2, 6


def rejected_at(state: Any, party: int, outs: Outputs, culprit: int | None,
                reason: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        deliver(state, party, outs)
    assert exc.value.culprit == culprit
    assert reason in str(exc.value)


def recommitted(trace: Trace, j: int, **changes: Any) -> tuple[dict[int, Any], Outputs]:
    """Party j commits to a decommitment with ``changes`` and runs on honestly."""
    own = trace.states[0][j].own
    dec = dataclasses.replace(own.decommitment, **changes)
    V, opening = hash_commitment.commit(reshare._COMMIT_DOMAIN, own.cfg.session, j, dec,
                                        SeededRandom(b"recommit"))
    msg = reshare.Msg1(V)
    bad = reshare.Round1(dataclasses.replace(own, decommitment=dec, opening=opening, msg1=msg))
    return rerun_round({**trace.states[0], j: bad}, {**trace.outputs[0], j: RoundOutput(msg)})


def test_sub_share_inconsistent_with_commitment_names_the_dealer(replaced: Trace) -> None:
    out = replaced.outputs[1][DEALER]
    bad = with_direct(out, HONEST_NEW, share=(out.direct[HONEST_NEW].share + 1) % Q)
    rejected_at(replaced.states[1][HONEST_NEW], HONEST_NEW, {**replaced.outputs[1], DEALER: bad},
                DEALER, "reshare sub-share does not match its Feldman commitments")


def test_sub_share_out_of_range_names_the_dealer(replaced: Trace) -> None:
    out = replaced.outputs[1][DEALER]
    bad = with_direct(out, HONEST_NEW, share=out.direct[HONEST_NEW].share + Q)
    rejected_at(replaced.states[1][HONEST_NEW], HONEST_NEW, {**replaced.outputs[1], DEALER: bad},
                DEALER, "reshare sub-share out of range")


def test_missing_sub_share_names_the_dealer(replaced: Trace) -> None:
    out = replaced.outputs[1][DEALER]
    direct = {j: m for j, m in out.direct.items() if j != HONEST_NEW}
    bad = dataclasses.replace(out, direct=direct)
    rejected_at(replaced.states[1][HONEST_NEW], HONEST_NEW, {**replaced.outputs[1], DEALER: bad},
                DEALER, "no reshare sub-share message received")


def test_shifted_constant_term_is_refused_naming_the_dealer(replaced: Trace) -> None:
    """A dealer deals w_i + 5 with consistent commitments and sub-shares: its constant
    terms no longer sum to the public key, and every party names it."""
    own = replaced.states[0][DEALER].own
    coeffs = ((own.coeffs[0] + 5) % Q, *own.coeffs[1:])
    F = tuple(Point.base_mul(a) for a in coeffs)
    states1, outs1 = recommitted_with_coeffs(replaced, DEALER, coeffs, F)
    for i in (1, 4, 6):
        rejected_at(states1[i], i, outs1, DEALER, "constant term F_j,0 is not λ_j·X_j")


def test_opposite_shifts_that_keep_the_sum_are_still_named(replaced: Trace) -> None:
    """Two colluding dealers shift by +d and −d: Σ F_i,0 = X still holds, but each
    constant term is checked against λ_i·X_i, so the first of them is named."""
    states, outs = dict(replaced.states[0]), dict(replaced.outputs[0])
    for j, d in ((1, 9), (4, Q - 9)):
        own = replaced.states[0][j].own
        coeffs = ((own.coeffs[0] + d) % Q, *own.coeffs[1:])
        states[j], outs[j] = _recommit(own, coeffs, tuple(Point.base_mul(a) for a in coeffs))
    states1, outs1 = rerun_round(states, outs)
    rejected_at(states1[2], 2, outs1, 1, "constant term F_j,0 is not λ_j·X_j")


def test_constant_terms_not_summing_to_the_key_are_refused(key35: Key) -> None:
    """Old public data whose shares do not interpolate to X (every dealer consistent with
    it): the sum check refuses the session, the new committee never accepts another key."""
    shares = {i: key35.shares[i] for i in (1, 2, 3)}
    wrong = dataclasses.replace(key35.public, public_key=Point.base_mul(7))
    moved = {i: KeyShare(i, wrong, s.x) for i, s in shares.items()}
    with pytest.raises(ProtocolError) as exc:
        run_reshare(moved, (1, 2, 3), 2, NONCE, SeededRandom(b"wrong"))
    assert exc.value.culprit is None
    assert "the constant terms do not sum to the public key" in str(exc.value)


def _recommit(own: Any, coeffs: tuple[int, ...], F: tuple[Point, ...]
              ) -> tuple[reshare.Round1, RoundOutput[Any, Any]]:
    dec = dataclasses.replace(own.decommitment, F=F)
    V, opening = hash_commitment.commit(reshare._COMMIT_DOMAIN, own.cfg.session, own.cfg.party,
                                        dec, SeededRandom(b"recommit"))
    msg = reshare.Msg1(V)
    new_own = dataclasses.replace(own, coeffs=coeffs, decommitment=dec, opening=opening,
                                  msg1=msg)
    return reshare.Round1(new_own), RoundOutput(msg)


def recommitted_with_coeffs(trace: Trace, j: int, coeffs: tuple[int, ...],
                            F: tuple[Point, ...]) -> tuple[dict[int, Any], Outputs]:
    state, out = _recommit(trace.states[0][j].own, coeffs, F)
    return rerun_round({**trace.states[0], j: state}, {**trace.outputs[0], j: out})


@pytest.mark.parametrize(("party", "changes", "reason"), [
    (DEALER, {"F": ()}, "0 Feldman commitments, expected 3"),
    (HONEST_NEW, {"F": (Point.base_mul(3),)}, "1 Feldman commitments, expected 0"),
    (1, {"A": None}, "a Schnorr commitment from every new member"),
    (HONEST_NEW, {"A": Point.identity()}, "a Schnorr commitment from every new member"),
    (DEALER, {"rid": b"\0" * 16}, "rid must be 32 bytes"),
], ids=["dealer-no-F", "non-dealer-F", "member-no-A", "identity-A", "short-rid"])
def test_malformed_decommitment_names_the_sender(replaced: Trace, party: int,
                                                 changes: dict[str, Any], reason: str) -> None:
    states1, outs1 = recommitted(replaced, party, **changes)
    honest = next(i for i in (1, 4, 6) if i != party)
    rejected_at(states1[honest], honest, outs1, party, reason)


def test_bad_opening_names_the_sender(replaced: Trace) -> None:
    outs = {**replaced.outputs[1],
            DEALER: with_broadcast(replaced.outputs[1][DEALER], opening=b"\7" * 32)}
    rejected_at(replaced.states[1][HONEST_NEW], HONEST_NEW, outs, DEALER,
                "decommitment does not open the round-1 commitment")


def test_equivocated_round_1_is_caught(replaced: Trace) -> None:
    outs = {**replaced.outputs[1],
            DEALER: with_broadcast(replaced.outputs[1][DEALER], echo=b"\1" * 32)}
    rejected_at(replaced.states[1][1], 1, outs, DEALER, "broadcast inconsistency")


def test_bad_schnorr_proof_names_the_new_member(replaced: Trace) -> None:
    out = replaced.outputs[2][HONEST_NEW]
    proof = dataclasses.replace(out.broadcast.proof, z=(out.broadcast.proof.z + 1) % Q)
    with pytest.raises(ProofError) as exc:
        deliver(replaced.states[2][1], 1,
                {**replaced.outputs[2], HONEST_NEW: with_broadcast(out, proof=proof)})
    assert (exc.value.culprit, exc.value.proof) == (HONEST_NEW, "Π^sch")


def test_missing_schnorr_proof_names_the_new_member(replaced: Trace) -> None:
    out = replaced.outputs[2][HONEST_NEW]
    rejected_at(replaced.states[2][1], 1,
                {**replaced.outputs[2], HONEST_NEW: with_broadcast(out, proof=None)},
                HONEST_NEW, "no Schnorr proof of the new share")


def test_leaving_dealer_keeps_nothing(key35: Key) -> None:
    out = run_reshare({i: key35.shares[i] for i in (1, 2, 5)}, (1, 2, 6), 2, NONCE,
                      SeededRandom(b"leave"))
    assert out[5].share is None and out[5].leaving == (5,)
    assert out[5].public == out[6].public


# --- what a node accepts --------------------------------------------------------------------


WITH_6 = ClusterView(3, (1, 2, 3, 4, 5, 6))  # cluster.toml after node 6 was added


@dataclasses.dataclass(frozen=True)
class Held:
    share: KeyShare | None
    public: PublicKeyData
    cluster: ClusterView = WITH_6

    def get_key_share(self, key_id: bytes) -> KeyShare:
        if self.share is None or key_id != self.public.key_id:
            raise KeyError(key_id)
        return self.share

    def get_key_public(self, key_id: bytes) -> PublicKeyData:
        if key_id != self.public.key_id:
            raise KeyError(key_id)
        return self.public

    def get_aux_info(self, key_id: bytes) -> AuxInfo:
        raise KeyError(key_id)

    def take_primes(self, profile: object) -> tuple[int, int]:
        raise AssertionError("reshare takes no primes")


def params(key: PublicKeyData, parties: tuple[int, ...], new: tuple[int, ...], t: int,
           epoch: int = 0) -> SessionParams:
    return SessionParams(parties, NONCE, threshold=t, key_id=key.key_id, epoch=epoch,
                         new_parties=new)


def test_configure_through_the_registry(key35: Key) -> None:
    spec = session_protocol("reshare")
    assert spec is RESHARE and spec.name is ProtocolName.RESHARE
    p = params(key35.public, (1, 2, 3, 4, 6), REPLACE_5_BY_6, 3)
    dealer = spec.configure(1, p, Held(key35.shares[1], key35.public))
    joining = spec.configure(6, p, Held(None, key35.public))
    assert dealer.session == joining.session
    assert dealer.committees.dealers == (1, 2, 3, 4)
    assert joining.share is None


@pytest.mark.parametrize(("parties", "new", "t", "epoch", "name", "reason"), [
    ((1, 2, 6), (1, 2, 6), 3, 0, "parties", "the key needs at least t = 3"),
    ((1, 2, 3, 6), (1, 2, 3, 6), 2, 0, "threshold", "differs from cluster.toml's threshold 3"),
    ((1, 2, 3, 7), (1, 2, 3, 7), 3, 0, "new_parties", "are not nodes of cluster.toml"),
    ((1, 2, 3, 4), (1, 2, 3, 4, 6), 3, 0, "parties", "are not the old holders taking part"),
    ((1, 2, 3, 6), (1, 2, 3, 6), 3, 1, "epoch", "is not the epoch of the key"),
], ids=["fewer-than-t", "t-not-cluster-toml", "member-not-a-node", "member-missing",
        "old-epoch"])
def test_configure_refuses(key35: Key, parties: tuple[int, ...], new: tuple[int, ...], t: int,
                           epoch: int, name: str, reason: str) -> None:
    with pytest.raises(ParameterRefused) as exc:
        reshare.configure(1, params(key35.public, parties, new, t, epoch),
                          Held(key35.shares[1], key35.public))
    assert exc.value.name == name and reason in str(exc.value)


def test_threshold_above_the_committee_is_refused(key35: Key) -> None:
    held = Held(key35.shares[1], key35.public, ClusterView(5, (1, 2, 3, 4, 5, 6)))
    with pytest.raises(ParameterRefused, match=r"new threshold 5 is not in 1\.\.4"):
        reshare.configure(1, params(key35.public, (1, 2, 3, 4, 5, 6), (1, 2, 3, 6), 5), held)


def test_config_refuses_a_share_of_another_party(key35: Key) -> None:
    c = reshare.Committees(key35.public, (1, 2, 3), (1, 2, 3), 2)
    with pytest.raises(UsageError):
        reshare.ReshareConfig(1, c, NONCE, key35.shares[2])


# --- the public record ------------------------------------------------------------------------


def test_audit_replays_the_public_checks(key35: Key, replaced: Trace) -> None:
    c = replaced.states[0][1].own.cfg.committees
    b = [{i: o.broadcast for i, o in outs.items()} for outs in replaced.outputs]
    assert reshare.audit(c, NONCE, *b) == replaced.results[6].public
    forged = dict(b[1])
    dec = dataclasses.replace(forged[DEALER].decommitment, rid=b"\2" * 32)
    forged[DEALER] = dataclasses.replace(forged[DEALER], decommitment=dec)
    with pytest.raises(ProtocolError) as exc:
        reshare.audit(c, NONCE, b[0], forged, b[2])
    assert exc.value.culprit == DEALER
