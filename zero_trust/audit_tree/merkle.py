"""RFC 6962 Merkle tree hash, audit paths and consistency proofs, and their verification.

Everything here works on *leaf hashes*, SHA-256(0x00 ‖ leaf data), never on leaf data, so
the log can keep one 32-byte hash per entry and build proofs from those alone.

- ``root_hash`` is MTH of RFC 6962 §2.1: the empty tree hashes to SHA-256(""), an inner
  node to SHA-256(0x01 ‖ left ‖ right), and a tree of n leaves splits at k, the largest
  power of two below n. ``MerkleFrontier`` computes it in one pass with O(log n) memory.
- ``inclusion_path_ranges`` / ``consistency_proof_ranges`` give PATH (§2.1.1) and PROOF
  (§2.1.2) as the leaf ranges [start, end) whose subtree hashes make the proof, in the
  RFC's order. ``inclusion_proof`` / ``consistency_proof`` hash those ranges.
- ``verify_inclusion`` / ``verify_consistency`` follow RFC 9162 §2.1.3.2 and §2.1.4.2 and
  raise ``MerkleProofError``; they never need more than the proof, the sizes and the roots.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

from zero_trust.audit_tree.audit_tree_errors import MerkleProofError

HASH_BYTES = 32
LEAF_PREFIX = b"\x00"  # RFC 6962 §2.1: leaf hashes and node hashes differ in their
NODE_PREFIX = b"\x01"  # first input byte, so a node can never pass for a leaf
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()
MAX_PROOF_NODES = 65  # a proof in a tree of < 2^64 leaves: one node per level, plus one

LeafRange = tuple[int, int]  # leaves [start, end)


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 ‖ d)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class MerkleFrontier:
    """The right edge of a growing tree: the hashes of its maximal perfect subtrees.

    After n pushes the stack holds one subtree per set bit of n, largest (leftmost) first;
    folding it from the right gives MTH of the n leaves, because RFC 6962 splits every
    tree at the largest power of two below its size.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[tuple[int, bytes]] = []  # (first leaf, subtree hash)

    @property
    def size(self) -> int:
        return self._size

    def push(self, leaf: bytes) -> list[tuple[int, bytes]]:
        """Append one leaf hash. Returns the perfect subtrees that end at the new size,
        as (first leaf, hash), smallest first: the leaf itself, then each merge."""
        _check_hash(leaf, "leaf hash")
        start, current = self._size, leaf
        self._size += 1
        completed = [(start, current)]
        remaining = self._size
        while remaining & 1 == 0:  # one merge per trailing zero bit of the new size
            start, left = self._stack.pop()
            current = node_hash(left, current)
            completed.append((start, current))
            remaining >>= 1
        self._stack.append((start, current))
        return completed

    def range_hash(self, start: int) -> bytes:
        """MTH of leaves [start, size), where start begins one of the stack's subtrees."""
        for position, (first, _) in enumerate(self._stack):
            if first == start:
                hashes = [h for _, h in self._stack[position:]]
                result = hashes[-1]
                for left in reversed(hashes[:-1]):
                    result = node_hash(left, result)
                return result
        raise ValueError(f"leaf {start} does not start a subtree on the right edge of "
                         f"a tree of {self._size} leaves")

    def root(self) -> bytes:
        """MTH of all leaves pushed so far."""
        return self.range_hash(0) if self._stack else EMPTY_ROOT


def root_hash(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes (RFC 6962 §2.1)."""
    frontier = MerkleFrontier()
    for leaf in leaf_hashes:
        frontier.push(leaf)
    return frontier.root()


def inclusion_path_ranges(index: int, size: int) -> list[LeafRange]:
    """PATH(index, D[size]) of RFC 6962 §2.1.1 as leaf ranges, the leaf's sibling first."""
    if not 0 <= index < size:
        raise MerkleProofError(f"leaf {index} is not in a tree of {size} leaves")
    siblings: list[LeafRange] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            siblings.append((middle, end))
            end = middle
        else:
            siblings.append((start, middle))
            start = middle
    siblings.reverse()  # collected root-down; the path lists them leaf-up
    return siblings


def consistency_proof_ranges(old_size: int, new_size: int) -> list[LeafRange]:
    """PROOF(old_size, D[new_size]) of RFC 6962 §2.1.2 as leaf ranges, in proof order.

    Empty when old_size is 0 or equals new_size (nothing to prove).
    """
    if not 0 <= old_size <= new_size:
        raise MerkleProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    nodes: list[LeafRange] = []
    start, end = 0, new_size
    whole_old_tree = True  # SUBPROOF's flag b: still on the path of the old root
    while end != old_size:
        middle = start + _split(end - start)
        if old_size <= middle:
            nodes.append((middle, end))
            end = middle
        else:
            nodes.append((start, middle))
            start = middle
            whole_old_tree = False
    if not whole_old_tree:
        nodes.append((start, end))  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
    nodes.reverse()  # collected root-down; SUBPROOF lists the deepest node first
    return nodes


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the first ``size`` leaf hashes."""
    _check_size(leaf_hashes, size)
    return [root_hash(leaf_hashes[s:e]) for s, e in inclusion_path_ranges(index, size)]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between the trees of the first old_size and new_size leaves."""
    _check_size(leaf_hashes, new_size)
    return [root_hash(leaf_hashes[s:e]) for s, e in consistency_proof_ranges(old_size, new_size)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` under ``root``?"""
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    for element in proof:
        _check_hash(element, "audit path element")
    if not 0 <= index < size:
        raise MerkleProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            raise MerkleProofError("the audit path is longer than a tree of this size allows")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn and not fn & 1:  # climb past levels where this node has no sibling
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleProofError("the audit path is shorter than a tree of this size requires")
    if not hmac.compare_digest(result, root):
        raise MerkleProofError(f"the audit path of leaf {index} does not lead to the root hash")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: is the tree (old_size, old_root) a prefix of (new_size, new_root)?"""
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    for element in proof:
        _check_hash(element, "consistency proof element")
    if not 0 <= old_size <= new_size:
        raise MerkleProofError(f"a tree of {new_size} leaves cannot extend one of {old_size}")
    if old_size in (0, new_size):
        _check_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    if not proof:
        raise MerkleProofError(f"the consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old tree is a perfect subtree: its root is
        path.insert(0, old_root)        # left out of the proof (RFC 9162 §2.1.4.2 step 2)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old_result = new_result = path[0]
    for node in path[1:]:
        if sn == 0:
            raise MerkleProofError("the consistency proof is longer than these sizes allow")
        if fn & 1 or fn == sn:
            old_result = node_hash(node, old_result)
            new_result = node_hash(node, new_result)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            new_result = node_hash(new_result, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise MerkleProofError("the consistency proof is shorter than these sizes require")
    if not hmac.compare_digest(old_result, old_root):
        raise MerkleProofError("the consistency proof does not lead to the root of size "
                               f"{old_size}")
    if not hmac.compare_digest(new_result, new_root):
        raise MerkleProofError("the consistency proof does not lead to the root of size "
                               f"{new_size}")


def _check_trivial_consistency(old_size: int, new_size: int, old_root: bytes,
                               new_root: bytes, proof: Sequence[bytes]) -> None:
    """Every tree extends the empty tree, and a tree extends only itself at equal size."""
    if proof:
        raise MerkleProofError(f"the consistency proof from size {old_size} to {new_size} "
                         "must be empty")
    if old_size == 0 and not hmac.compare_digest(old_root, EMPTY_ROOT):
        raise MerkleProofError("the root of the empty tree must be SHA-256 of the empty string")
    if old_size == new_size and not hmac.compare_digest(old_root, new_root):
        raise MerkleProofError(f"two different roots for the same tree size {old_size}")


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(leaf_hashes: Sequence[bytes], size: int) -> None:
    if size > len(leaf_hashes):
        raise MerkleProofError(f"a tree of {size} leaves needs {size} leaf hashes, "
                         f"got {len(leaf_hashes)}")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise MerkleProofError(f"a {what} is {HASH_BYTES} bytes")
