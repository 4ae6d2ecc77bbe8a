"""The start-up checks of a node's key material (key_share.check_key_share,
check_aux_info): honest material passes, and each check refuses the damage it names."""

from __future__ import annotations

import dataclasses

import pytest

from mpcnode.crypto.group import Point, Q
from mpcnode.protocol.key_share import (
    AuxInfo,
    KeyMaterialError,
    KeyShare,
    check_aux_info,
    check_key_share,
)
from mpcnode.sim.simulator import run_keygen
from test_only.seeded_random import SeededRandom
from testing.store_material import Material, make_material

PARTIES = (1, 2, 3)


@pytest.fixture(scope="module")
def shares() -> dict[int, KeyShare]:
    return run_keygen(PARTIES, 2, b"key-material".ljust(32, b"\0"), SeededRandom(b"km"))


@pytest.fixture(scope="module")
def material() -> Material:
    return make_material()


def test_honest_material_passes(shares: dict[int, KeyShare], material: Material) -> None:
    for i, share in shares.items():
        check_key_share(share, i)
    for i, aux in material.aux.items():
        check_aux_info(aux, material.shares[i].public, i)


def _refused(check: str, share: KeyShare, party: int) -> None:
    with pytest.raises(KeyMaterialError) as exc:
        check_key_share(share, party)
    assert exc.value.check == check, exc.value


def test_another_partys_share_is_refused(shares: dict[int, KeyShare]) -> None:
    _refused("party", shares[2], 1)


def test_a_share_relabelled_as_ours_is_refused(shares: dict[int, KeyShare]) -> None:
    _refused("public_share", dataclasses.replace(shares[2], party=1), 1)


@pytest.mark.parametrize("x", [0, Q, 12345])
def test_a_wrong_secret_is_refused(shares: dict[int, KeyShare], x: int) -> None:
    _refused("public_share", dataclasses.replace(shares[1], x=x), 1)


def test_public_shares_missing_a_party_are_refused(shares: dict[int, KeyShare]) -> None:
    pub = shares[1].public
    cut = {j: p for j, p in pub.public_shares.items() if j != 3}
    _refused("parties", dataclasses.replace(
        shares[1], public=dataclasses.replace(pub, public_shares=cut)), 1)


def test_a_bad_threshold_is_refused(shares: dict[int, KeyShare]) -> None:
    pub = shares[1].public
    _refused("threshold", dataclasses.replace(
        shares[1], public=dataclasses.replace(pub, threshold=4)), 1)


def test_a_public_key_off_the_shares_is_refused(shares: dict[int, KeyShare]) -> None:
    pub = shares[1].public
    other = dataclasses.replace(pub, public_key=pub.public_key + Point.generator())
    _refused("interpolation", dataclasses.replace(shares[1], public=other), 1)


def test_a_third_public_share_off_the_polynomial_is_refused(
        shares: dict[int, KeyShare]) -> None:
    # Parties 1 and 2 interpolate to X; party 3's public share is checked against them.
    pub = shares[1].public
    moved = {**pub.public_shares, 3: pub.public_shares[3] + Point.generator()}
    _refused("interpolation", dataclasses.replace(
        shares[1], public=dataclasses.replace(pub, public_shares=moved)), 1)


def _aux_refused(check: str, aux: AuxInfo, material: Material, party: int = 1) -> None:
    with pytest.raises(KeyMaterialError) as exc:
        check_aux_info(aux, material.shares[1].public, party)
    assert exc.value.check == check, exc.value


def test_another_partys_aux_info_is_refused(material: Material) -> None:
    _aux_refused("party", material.aux[2], material)


def test_an_unknown_profile_is_refused(material: Material) -> None:
    _aux_refused("profile", dataclasses.replace(material.aux[1], profile_name="nope"), material)


def test_aux_info_of_other_parties_is_refused(material: Material) -> None:
    aux = material.aux[1]
    _aux_refused("parties", dataclasses.replace(aux, peers={1: aux.peers[1]}), material)


def test_a_paillier_secret_of_another_party_is_refused(material: Material) -> None:
    aux = dataclasses.replace(material.aux[1], paillier=material.aux[2].paillier)
    _aux_refused("paillier", aux, material)


def test_a_ring_pedersen_secret_of_another_party_is_refused(material: Material) -> None:
    aux = dataclasses.replace(material.aux[1], ring_pedersen=material.aux[2].ring_pedersen)
    _aux_refused("ring_pedersen", aux, material)


def test_a_wrong_ring_pedersen_lambda_is_refused(material: Material) -> None:
    rp = material.aux[1].ring_pedersen
    aux = dataclasses.replace(material.aux[1],
                              ring_pedersen=dataclasses.replace(rp, lam=rp.lam + 1))
    _aux_refused("ring_pedersen", aux, material)
