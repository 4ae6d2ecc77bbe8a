"""A node takes approvals that leave the nonce to signing time (``nonce_at_signing``)
only for a key whose signer sets all share a node (2t > n): with disjoint sets, a hostile
OMS could have one set sign the approved transfer at one nonce and the other set at
another — two payments from one approval — and no node would see both."""

from __future__ import annotations

import pytest

from mpcnode.crypto.group import Point
from mpcnode.daemon.node import _signer_sets_intersect
from mpcnode.protocol.key_share import KeyShare, PublicKeyData
from zero_trust.authorization import AuthorizationDenied


def share(t: int, n: int) -> KeyShare:
    g = Point.generator()
    parties = tuple(range(1, n + 1))
    return KeyShare(1, PublicKeyData(t, parties, g, {i: g for i in parties}, b"\x00" * 32, 0),
                    1)


@pytest.mark.parametrize(("t", "n"), [(2, 3), (3, 5), (3, 4), (1, 1), (4, 7)])
def test_intersecting_signer_sets_take_a_late_nonce(t: int, n: int) -> None:
    _signer_sets_intersect(share(t, n))


@pytest.mark.parametrize(("t", "n"), [(2, 4), (1, 2), (3, 6), (2, 5)])
def test_disjoint_signer_sets_refuse_a_late_nonce(t: int, n: int) -> None:
    with pytest.raises(AuthorizationDenied, match=f"this {t}-of-{n} key has disjoint "
                                                  "signer sets"):
        _signer_sets_intersect(share(t, n))
