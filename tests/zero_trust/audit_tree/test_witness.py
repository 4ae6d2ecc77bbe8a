"""What a witness accepts as the audit log's next tree head: one test per refusal, each
matched by its words, and the honest extension accepted."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zero_trust.audit_tree.audit_tree_errors import WitnessRefused
from zero_trust.audit_tree.merkle import consistency_proof, leaf_hash, root_hash
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead
from zero_trust.audit_tree.witness import check_head_age, check_next_head

KEY = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
OTHER = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
LEAVES = [leaf_hash(hashlib.sha256(bytes([i])).digest()) for i in range(20)]


def head(size: int, *, at: int = 1000, log: str = "oms", key: Ed25519PrivateKey = KEY,
         leaves: list[bytes] = LEAVES) -> SignedTreeHead:
    unsigned = TreeHead(log, size, root_hash(leaves[:size]), at + size)
    return SignedTreeHead(unsigned, key.sign(unsigned.signed_bytes()))


def accept(old: SignedTreeHead | None, new: SignedTreeHead, proof: list[bytes]) -> bool:
    return check_next_head(old, new, proof, KEY.public_key())


def test_an_extension_with_its_proof_is_accepted_and_kept() -> None:
    assert accept(head(7), head(13), consistency_proof(LEAVES, 7, 13))


def test_the_first_head_is_taken_on_trust() -> None:
    assert accept(None, head(5), [])


def test_the_head_already_held_is_accepted_whatever_the_proof() -> None:
    """A retried sign request carries the head the node took on the first try."""
    assert not accept(head(9), head(9), consistency_proof(LEAVES, 4, 9))


def test_a_head_signed_by_another_key_is_refused() -> None:
    with pytest.raises(WitnessRefused, match="does not verify under the audit public key"):
        accept(head(7), head(13, key=OTHER), consistency_proof(LEAVES, 7, 13))


def test_a_head_of_another_log_is_refused() -> None:
    with pytest.raises(WitnessRefused, match="of log 'elsewhere', this node witnesses log"):
        accept(head(7), head(13, log="elsewhere"), consistency_proof(LEAVES, 7, 13))


def test_an_older_head_is_refused() -> None:
    with pytest.raises(WitnessRefused, match="covers 6 entries, older than the head of 7"):
        accept(head(7), head(6), [])


def test_a_head_dated_before_the_held_one_is_refused() -> None:
    with pytest.raises(WitnessRefused, match="dated before the head of 7 entries"):
        accept(head(7, at=5000), head(13), consistency_proof(LEAVES, 7, 13))


def test_a_rewritten_log_is_refused() -> None:
    rewritten = list(LEAVES)
    rewritten[3] = leaf_hash(b"the lie")
    new = head(13, leaves=rewritten)
    with pytest.raises(WitnessRefused, match="not consistent with the head of 7 entries"):
        accept(head(7), new, consistency_proof(rewritten, 7, 13))


def test_a_different_root_at_the_same_size_is_refused() -> None:
    rewritten = list(LEAVES)
    rewritten[0] = leaf_hash(b"the lie")
    with pytest.raises(WitnessRefused, match="two different roots for the same tree size"):
        accept(head(7), head(7, leaves=rewritten, at=1001), [])


def test_a_proof_longer_than_any_tree_allows_is_refused_before_it_is_hashed() -> None:
    with pytest.raises(WitnessRefused, match="at most 65 nodes, got 66"):
        accept(head(7), head(13), [b"\x00" * 32] * 66)


def test_a_head_within_the_maximum_age_either_way_is_fresh() -> None:
    stamped = head(0, at=1_000_000)  # timestamp 1000 s
    check_head_age(stamped, 1000.0 + 600, 600)
    check_head_age(stamped, 1000.0 - 600, 600)


def test_a_head_older_than_the_maximum_age_is_refused() -> None:
    with pytest.raises(WitnessRefused, match=r"it is 601 s old, more than the 600 s this node "
                                             r"accepts \(a stale head held back"):
        check_head_age(head(0, at=1_000_000), 1601.0, 600)


def test_a_head_dated_ahead_of_the_clock_is_refused() -> None:
    with pytest.raises(WitnessRefused, match=r"dated 601 s ahead of this node's clock"):
        check_head_age(head(0, at=1_000_000), 399.0, 600)


def test_the_age_is_checked_once_the_signature_holds() -> None:
    """A forged head is refused as forged, whatever its date; a signed one for its age."""
    with pytest.raises(WitnessRefused, match="does not verify"):
        check_next_head(None, head(5, key=OTHER), [], KEY.public_key(), now_s=10**6,
                        max_age_s=600)
    with pytest.raises(WitnessRefused, match="s old"):
        check_next_head(None, head(5), [], KEY.public_key(), now_s=10**6, max_age_s=600)
    assert check_next_head(None, head(5, at=10**9), [], KEY.public_key(), now_s=10**6,
                           max_age_s=600)
