"""Known answers: the hashes of fixed audit entries never change, so logs written before
any change of the encoder keep verifying. The entries hold what makes canonical JSON
encoders differ: whole and tiny floats, an integer above 2^53 and non-ASCII text."""

from __future__ import annotations

from oms_core.audit.entry import GENESIS_HASH, make_entry


def test_the_entry_hashes_are_pinned() -> None:
    first = make_entry(index=0, at=1700000000.0, actor="alice", action="request.create",
                       subject="request:r-1",
                       details={"amount": "10", "chain_id": 1, "expires_at": 1700000600.5,
                                "note": "naïve ✓", "tiny": 1e-07, "big": 10**30,
                                "nested": {"b": [1, None, True], "a": {}}},
                       prev_hash=GENESIS_HASH)
    second = make_entry(index=1, at=1700000001.25, actor="bob", action="request.approve",
                        subject="", details={}, prev_hash=first.entry_hash)
    assert first.entry_hash.hex() == \
        "ada192aef6723d5db20609165bc1e0fe2b6f8638eef6ae369c83909581e8e063"
    assert first.leaf_hash.hex() == \
        "d1238f4f3d3569a2f5680a5f24ed3f1156f73e3162431f4937e3f418d27911b1"
    assert second.entry_hash.hex() == \
        "df4191992eee9015915f08e2434b18468313ca0aa988b3880930613b5774c34d"
