"""The node's witnessed head on disk: kept across restarts, unchanged by a refusal, and a
file the audit key did not sign refused when read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.audit_witness_state import (
    AuditWitnessState,
    WitnessStateError,
    tree_head_to_proto,
)
from zero_trust.audit_tree.audit_tree_errors import WitnessRefused
from zero_trust.audit_tree.merkle import consistency_proof, leaf_hash, root_hash
from zero_trust.audit_tree.tree_head import SignedTreeHead, TreeHead

KEY = Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
RAW = KEY.public_key().public_bytes_raw()
LEAVES = [leaf_hash(hashlib.sha256(bytes([i])).digest()) for i in range(10)]


NOW_S = 1_800_000_000.0
MAX_AGE_S = 600


def witness(size: int, old: int, at_s: float = NOW_S) -> pb.AuditWitness:
    unsigned = TreeHead("oms", size, root_hash(LEAVES[:size]), int(at_s * 1000) + size)
    head = SignedTreeHead(unsigned, KEY.sign(unsigned.signed_bytes()))
    proof = consistency_proof(LEAVES, old, size) if old <= size else []
    return pb.AuditWitness(head=tree_head_to_proto(head), consistency_proof=proof)


def test_the_newest_head_is_kept_across_restarts(tmp_path: Path) -> None:
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    assert state.head is None
    state.witness(witness(4, 0), now_s=NOW_S)
    state.witness(witness(9, 4), now_s=NOW_S)
    again = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    assert again.head is not None and again.head.tree_size == 9


def test_a_refused_head_leaves_the_file_unchanged(tmp_path: Path) -> None:
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    state.witness(witness(9, 0), now_s=NOW_S)
    before = state.head_file.read_bytes()
    with pytest.raises(WitnessRefused, match="older than the head of 9"):
        state.witness(witness(4, 9), now_s=NOW_S)
    assert state.head_file.read_bytes() == before
    assert AuditWitnessState(tmp_path, RAW, MAX_AGE_S).head == state.head


def test_a_malformed_head_in_a_request_is_a_refusal(tmp_path: Path) -> None:
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    with pytest.raises(WitnessRefused, match="a root hash is 32 bytes"):
        state.witness(pb.AuditWitness(head=pb.TreeHead(log_id="oms", root_hash=b"x")),
                      now_s=NOW_S)


def test_a_head_file_edited_on_disk_is_refused_at_start(tmp_path: Path) -> None:
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    state.witness(witness(9, 0), now_s=NOW_S)
    edited = json.loads(state.head_file.read_text())
    edited["tree_size"] = 3  # rolled back by someone with the node's disk
    state.head_file.write_text(json.dumps(edited))
    with pytest.raises(WitnessStateError, match="does not verify under the audit public key"):
        AuditWitnessState(tmp_path, RAW, MAX_AGE_S)


def test_a_stale_or_future_head_is_refused_and_leaves_the_file(tmp_path: Path) -> None:
    """An OMS that keeps showing an old head (never the newest) is refused once it ages
    out against the node's own clock; a head dated ahead would never age."""
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    state.witness(witness(4, 0), now_s=NOW_S)
    before = state.head_file.read_bytes()
    with pytest.raises(WitnessRefused, match=r"it is 601 s old, more than the 600 s"):
        state.witness(witness(9, 4, at_s=NOW_S - 601), now_s=NOW_S)
    with pytest.raises(WitnessRefused, match=r"dated 602 s ahead of this node's clock"):
        state.witness(witness(9, 4, at_s=NOW_S + 602), now_s=NOW_S)
    with pytest.raises(WitnessRefused, match="s old"):  # the very head held, replayed later
        state.witness(witness(4, 0), now_s=NOW_S + 700)
    assert state.head_file.read_bytes() == before
    state.witness(witness(9, 4, at_s=NOW_S + 10), now_s=NOW_S + 609)  # 599 s old
    assert state.head is not None and state.head.tree_size == 9


def signed(size: int, key: Ed25519PrivateKey = KEY, at_s: float = NOW_S) -> SignedTreeHead:
    unsigned = TreeHead("oms", size, root_hash(LEAVES[:size]), int(at_s * 1000) + size)
    return SignedTreeHead(unsigned, key.sign(unsigned.signed_bytes()))


def test_a_pinned_head_replaces_trust_on_first_use(tmp_path: Path) -> None:
    """Pinned, the node's first head must extend the pin: a log that does not (another
    log the OMS host made up, or the real one rewritten) is refused from the start."""
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    assert state.pin(signed(6)) is True
    assert state.pin(signed(6)) is False  # the same pin again
    forged = [leaf_hash(b"forged %d" % i) for i in range(10)]
    unsigned = TreeHead("oms", 9, root_hash(forged[:9]), int(NOW_S * 1000) + 9)
    lie = SignedTreeHead(unsigned, KEY.sign(unsigned.signed_bytes()))
    with pytest.raises(WitnessRefused, match="is not consistent with the head of 6"):
        state.witness(pb.AuditWitness(head=tree_head_to_proto(lie),
                                      consistency_proof=consistency_proof(forged, 6, 9)),
                      now_s=NOW_S)
    state.witness(witness(9, 6), now_s=NOW_S)  # the real log, extending the pin
    assert AuditWitnessState(tmp_path, RAW, MAX_AGE_S).head == state.head


def test_a_pin_is_refused_unsigned_or_over_a_held_head(tmp_path: Path) -> None:
    state = AuditWitnessState(tmp_path, RAW, MAX_AGE_S)
    other = Ed25519PrivateKey.from_private_bytes(b"\x06" * 32)
    with pytest.raises(WitnessRefused, match=r"pinned head refused: .*does not verify"):
        state.pin(signed(6, key=other))
    assert state.head is None and not state.head_file.exists()
    state.witness(witness(4, 0), now_s=NOW_S)
    with pytest.raises(WitnessRefused, match="already witnesses a head of 4 entries"):
        state.pin(signed(9))
    assert state.head is not None and state.head.tree_size == 4
