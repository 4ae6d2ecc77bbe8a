"""RFC 6962 Merkle tree: structure, proofs for every small (index, size), RFC 9162
verification, and that every kind of corrupted proof is rejected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_core.audit.audit_errors import MerkleProofError
from zero_trust.audit_tree.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    consistency_proof,
    consistency_proof_ranges,
    inclusion_path_ranges,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 20
LEAVES = [leaf_hash(f"leaf {i}".encode()) for i in range(MAX_SIZE)]

# The eight-leaf reference tree used across Certificate Transparency implementations:
# leaf data and the root after each leaf (RFC 6962 hashing, SHA-256).
CT_LEAF_DATA = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
                bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


# --- an independent, literal transcription of RFC 6962 §2.1 to compare against ---

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _flip(value: bytes, byte: int = 0) -> bytes:
    return value[:byte] + bytes([value[byte] ^ 0x01]) + value[byte + 1:]


# --- structure ---

def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_hash([]) == EMPTY_ROOT
    assert MerkleFrontier().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert root_hash([leaf_hash(b"x")]) == leaf_hash(b"x")  # one leaf: root is its hash
    # A node never passes for a leaf over the same bytes (second-preimage resistance).
    assert leaf_hash(left + right) != node_hash(left, right)


def test_roots_of_the_certificate_transparency_reference_tree() -> None:
    leaves = [leaf_hash(data) for data in CT_LEAF_DATA]
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert root_hash(leaves[:size]).hex() == expected


def test_reference_tree_proofs() -> None:
    leaves = [leaf_hash(data) for data in CT_LEAF_DATA]
    assert [p.hex()[:8] for p in inclusion_proof(leaves, 0, 8)] == ["96a296d2", "5f083f0a",
                                                                   "6b47aaf2"]
    assert [p.hex()[:8] for p in consistency_proof(leaves, 6, 8)] == ["0ebc5d34", "ca854ea1",
                                                                     "d37ee418"]
    assert [p.hex()[:8] for p in consistency_proof(leaves, 2, 5)] == ["5f083f0a", "bc1a0643"]


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_root_matches_the_recursive_definition(size: int) -> None:
    assert root_hash(LEAVES[:size]) == _mth(LEAVES[:size])


def test_proofs_match_the_recursive_definition_for_every_pair() -> None:
    for size in range(1, MAX_SIZE + 1):
        tree = LEAVES[:size]
        for index in range(size):
            assert inclusion_proof(LEAVES, index, size) == _path(index, tree)
        for old in range(1, size + 1):
            assert consistency_proof(LEAVES, old, size) == _subproof(old, tree, True)


def test_frontier_reports_subtrees_as_they_complete() -> None:
    frontier = MerkleFrontier()
    for leaf in LEAVES[:3]:
        frontier.push(leaf)
    completed = frontier.push(LEAVES[3])  # leaf 3 closes [3,4), [2,4) and [0,4)
    assert [start for start, _ in completed] == [3, 2, 0]
    assert completed[-1][1] == _mth(LEAVES[:4])
    frontier.push(LEAVES[4])
    assert frontier.range_hash(4) == LEAVES[4]
    assert frontier.root() == _mth(LEAVES[:5])
    with pytest.raises(ValueError, match="does not start a subtree"):
        frontier.range_hash(2)  # inside the perfect subtree [0, 4)


def test_range_shapes() -> None:
    assert inclusion_path_ranges(5, 8) == [(4, 5), (6, 8), (0, 4)]
    assert consistency_proof_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert consistency_proof_ranges(4, 7) == [(4, 7)]  # a perfect old tree is left out
    assert consistency_proof_ranges(0, 7) == []
    assert consistency_proof_ranges(7, 7) == []


# --- every proof up to MAX_SIZE verifies ---

def test_every_inclusion_proof_verifies() -> None:
    for size in range(1, MAX_SIZE + 1):
        root = root_hash(LEAVES[:size])
        for index in range(size):
            verify_inclusion(LEAVES[index], index, size, inclusion_proof(LEAVES, index, size),
                             root)


def test_every_consistency_proof_verifies() -> None:
    for new in range(MAX_SIZE + 1):
        new_root = root_hash(LEAVES[:new])
        for old in range(new + 1):
            verify_consistency(old, new, root_hash(LEAVES[:old]), new_root,
                               consistency_proof(LEAVES, old, new))


# --- corrupted proofs fail ---

def test_every_corrupted_inclusion_proof_fails() -> None:
    for size in range(1, MAX_SIZE + 1):
        root = root_hash(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(LEAVES, index, size)
            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position])
                with pytest.raises(MerkleProofError):
                    verify_inclusion(LEAVES[index], index, size, bad, root)
            with pytest.raises(MerkleProofError):
                verify_inclusion(_flip(LEAVES[index]), index, size, proof, root)
            with pytest.raises(MerkleProofError):
                verify_inclusion(LEAVES[index], index, size, proof, _flip(root))
            with pytest.raises(MerkleProofError):
                verify_inclusion(LEAVES[index], index, size, [*proof, LEAVES[0]], root)
            if proof:
                with pytest.raises(MerkleProofError):
                    verify_inclusion(LEAVES[index], index, size, proof[:-1], root)


def test_inclusion_at_a_wrong_index_or_size_fails() -> None:
    size, index = 13, 6
    proof = inclusion_proof(LEAVES, index, size)
    root = root_hash(LEAVES[:size])
    for wrong_index in (5, 7, 12):
        with pytest.raises(MerkleProofError):
            verify_inclusion(LEAVES[index], wrong_index, size, proof, root)
    for wrong_size in (8, 17):  # the path's shape depends on the size
        with pytest.raises(MerkleProofError):
            verify_inclusion(LEAVES[index], index, wrong_size, proof, root)
    with pytest.raises(MerkleProofError, match="not in a tree"):
        verify_inclusion(LEAVES[index], 13, 13, proof, root)
    with pytest.raises(MerkleProofError, match="32 bytes"):
        verify_inclusion(LEAVES[index], index, size, [b"short"], root)


def test_every_corrupted_consistency_proof_fails() -> None:
    for new in range(2, MAX_SIZE + 1):
        new_root = root_hash(LEAVES[:new])
        for old in range(1, new):
            old_root = root_hash(LEAVES[:old])
            proof = consistency_proof(LEAVES, old, new)
            for position in range(len(proof)):
                bad = [*proof]
                bad[position] = _flip(bad[position], 31)
                with pytest.raises(MerkleProofError):
                    verify_consistency(old, new, old_root, new_root, bad)
            with pytest.raises(MerkleProofError):
                verify_consistency(old, new, _flip(old_root), new_root, proof)
            with pytest.raises(MerkleProofError):
                verify_consistency(old, new, old_root, _flip(new_root), proof)
            with pytest.raises(MerkleProofError):
                verify_consistency(old, new, old_root, new_root, [*proof, LEAVES[0]])
            with pytest.raises(MerkleProofError):
                verify_consistency(old, new, old_root, new_root, proof[:-1])


def test_consistency_edge_cases() -> None:
    root5 = root_hash(LEAVES[:5])
    proof = consistency_proof(LEAVES, 3, 5)
    with pytest.raises(MerkleProofError, match="cannot extend"):
        verify_consistency(5, 3, root5, root_hash(LEAVES[:3]), proof)
    with pytest.raises(MerkleProofError, match="empty"):
        verify_consistency(3, 5, root_hash(LEAVES[:3]), root5, [])
    with pytest.raises(MerkleProofError, match="two different roots"):
        verify_consistency(5, 5, root5, root_hash(LEAVES[:4]), [])
    with pytest.raises(MerkleProofError, match="must be empty"):
        verify_consistency(5, 5, root5, root5, [root5])
    with pytest.raises(MerkleProofError, match="empty tree"):
        verify_consistency(0, 5, root5, root5, [])
    verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    # A tree that is not an extension: same sizes, one leaf changed.
    changed = [*LEAVES[:5]]
    changed[1] = leaf_hash(b"rewritten")
    with pytest.raises(MerkleProofError):
        verify_consistency(3, 5, root_hash(changed[:3]), root5, proof)


def test_proof_generation_rejects_impossible_requests() -> None:
    with pytest.raises(MerkleProofError):
        inclusion_proof(LEAVES, 3, 3)
    with pytest.raises(MerkleProofError):
        inclusion_proof(LEAVES, 0, MAX_SIZE + 1)  # more leaves than given
    with pytest.raises(MerkleProofError):
        consistency_proof(LEAVES, 4, 3)


# --- properties ---

@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=8), min_size=1, max_size=300), seed=st.data())
def test_inclusion_property(data: list[bytes], seed: st.DataObject) -> None:
    leaves = [leaf_hash(d) for d in data]
    size = seed.draw(st.integers(1, len(leaves)), label="size")
    index = seed.draw(st.integers(0, size - 1), label="index")
    root = root_hash(leaves[:size])
    proof = inclusion_proof(leaves, index, size)
    verify_inclusion(leaves[index], index, size, proof, root)
    if proof:
        position = seed.draw(st.integers(0, len(proof) - 1), label="position")
        byte = seed.draw(st.integers(0, 31), label="byte")
        bad = [*proof]
        bad[position] = _flip(bad[position], byte)
        with pytest.raises(MerkleProofError):
            verify_inclusion(leaves[index], index, size, bad, root)


@settings(max_examples=150, deadline=None)
@given(data=st.lists(st.binary(max_size=8), min_size=1, max_size=300), seed=st.data())
def test_consistency_property(data: list[bytes], seed: st.DataObject) -> None:
    leaves = [leaf_hash(d) for d in data]
    new = seed.draw(st.integers(1, len(leaves)), label="new")
    old = seed.draw(st.integers(1, new), label="old")
    old_root, new_root = root_hash(leaves[:old]), root_hash(leaves[:new])
    proof = consistency_proof(leaves, old, new)
    verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        # Any change to the old part breaks it: the old tree is no longer a prefix.
        changed = seed.draw(st.integers(0, old - 1), label="changed")
        other = [*leaves[:new]]
        other[changed] = _flip(other[changed])
        with pytest.raises(MerkleProofError):
            verify_consistency(old, new, root_hash(other[:old]), new_root, proof)
