"""Fiat–Shamir transcript (mpcnode/crypto/transcript.py): framing, ranges, binding."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypedDict

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mpcnode.crypto.group import Point, Q
from mpcnode.crypto.transcript import ProofContext, Transcript, encode_int, session_id

Builder = Callable[[Transcript], None]


def steps(*builders: Builder) -> Builder:
    """One builder running ``builders`` in order (a lambda holds a single call)."""

    def build(t: Transcript) -> None:
        for builder in builders:
            builder(t)

    return build


def challenge(build: Builder, domain: str = "test/v1") -> bytes:
    t = Transcript(domain)
    build(t)
    return t.challenge_bytes("e", 32)


def test_deterministic() -> None:
    def build(t: Transcript) -> None:
        t.append_bytes("a", b"xyz")
        t.append_int("n", -12345)
        t.append_str("s", "hello")
        t.append_point("P", Point.base_mul(7))
        t.append_ints("v", [1, 2, 3])
        t.append_points("Ps", [Point.generator(), Point.identity()])

    assert challenge(build) == challenge(build)
    t1, t2 = Transcript("d"), Transcript("d")
    for t in (t1, t2):
        build(t)
    assert t1.challenge_below("e", Q) == t2.challenge_below("e", Q)
    assert t1.challenge_signed("f", Q) == t2.challenge_signed("f", Q)
    assert t1.challenge_bits("g", 77) == t2.challenge_bits("g", 77)


def test_challenges_advance_the_transcript() -> None:
    t = Transcript("d")
    first = t.challenge_bytes("e", 32)
    second = t.challenge_bytes("e", 32)
    assert first != second


def test_copy_forks_independently() -> None:
    t = Transcript("d")
    t.append_int("x", 1)
    fork = t.copy()
    assert fork.copy().challenge_bytes("e", 32) == t.copy().challenge_bytes("e", 32)
    fork.append_int("y", 2)
    assert fork.challenge_bytes("e", 32) != t.challenge_bytes("e", 32)


# Pairs of transcripts whose naïve concatenation could coincide; each must differ.
AMBIGUOUS_PAIRS: list[tuple[str, Builder, Builder]] = [
    (
        "alpha-shuffle split point",
        steps(lambda t: t.append_bytes("m", b"ab"), lambda t: t.append_bytes("m", b"c")),
        steps(lambda t: t.append_bytes("m", b"a"), lambda t: t.append_bytes("m", b"bc")),
    ),
    (
        "split vs joined bytes",
        steps(lambda t: t.append_bytes("m", b"ab"), lambda t: t.append_bytes("m", b"")),
        lambda t: t.append_bytes("m", b"ab"),
    ),
    (
        "label/value boundary",
        lambda t: t.append_bytes("ab", b"c"),
        lambda t: t.append_bytes("a", b"bc"),
    ),
    (
        "int vs bytes of the same value",
        lambda t: t.append_int("m", 0x0102),
        lambda t: t.append_bytes("m", b"\x01\x02"),
    ),
    (
        "int vs bytes of its encoding",
        lambda t: t.append_int("m", 0x0102),
        lambda t: t.append_bytes("m", encode_int(0x0102)),
    ),
    (
        "str vs bytes",
        lambda t: t.append_str("m", "ab"),
        lambda t: t.append_bytes("m", b"ab"),
    ),
    (
        "point vs bytes",
        lambda t: t.append_point("m", Point.generator()),
        lambda t: t.append_bytes("m", Point.generator().to_bytes()),
    ),
    (
        "labels matter",
        lambda t: t.append_bytes("x", b"v"),
        lambda t: t.append_bytes("y", b"v"),
    ),
    (
        "int list [1,2] vs [12]",
        lambda t: t.append_ints("m", [1, 2]),
        lambda t: t.append_ints("m", [12]),
    ),
    (
        "int list [1,2] vs [0x0102]",
        lambda t: t.append_ints("m", [1, 2]),
        lambda t: t.append_ints("m", [0x0102]),
    ),
    (
        # Sign byte + magnitude of 1 then 2 spells the encoding of 0x010002: item lengths matter.
        "int list [1,2] vs [0x010002]",
        lambda t: t.append_ints("m", [1, 2]),
        lambda t: t.append_ints("m", [0x010002]),
    ),
    (
        "int list [] vs [0]",
        lambda t: t.append_ints("m", []),
        lambda t: t.append_ints("m", [0]),
    ),
    (
        "list vs two ints",
        lambda t: t.append_ints("m", [1, 2]),
        steps(lambda t: t.append_int("m", 1), lambda t: t.append_int("m", 2)),
    ),
    (
        "negative vs positive",
        lambda t: t.append_int("m", -5),
        lambda t: t.append_int("m", 5),
    ),
    (
        "negative vs positive in a list",
        lambda t: t.append_ints("m", [-5]),
        lambda t: t.append_ints("m", [5]),
    ),
    (
        "zero vs empty bytes",
        lambda t: t.append_int("m", 0),
        lambda t: t.append_bytes("m", b""),
    ),
    (
        "int 1 vs 256 (leading bytes)",
        lambda t: t.append_int("m", 1),
        lambda t: t.append_int("m", 256),
    ),
    (
        "order of items",
        steps(lambda t: t.append_int("a", 1), lambda t: t.append_int("b", 2)),
        steps(lambda t: t.append_int("b", 2), lambda t: t.append_int("a", 1)),
    ),
    (
        "point lists split differently",
        steps(
            lambda t: t.append_points("m", [Point.generator(), Point.base_mul(2)]),
            lambda t: t.append_points("m", []),
        ),
        steps(
            lambda t: t.append_points("m", [Point.generator()]),
            lambda t: t.append_points("m", [Point.base_mul(2)]),
        ),
    ),
    (
        "identity vs generator",
        lambda t: t.append_point("m", Point.identity()),
        lambda t: t.append_point("m", Point.generator()),
    ),
]


@pytest.mark.parametrize(
    ("build_a", "build_b"),
    [(a, b) for _, a, b in AMBIGUOUS_PAIRS],
    ids=[name for name, _, _ in AMBIGUOUS_PAIRS],
)
def test_framing_is_unambiguous(build_a: Builder, build_b: Builder) -> None:
    assert challenge(build_a) != challenge(build_b)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**600), 2**600), st.integers(-(2**600), 2**600))
def test_encode_int_is_injective(a: int, b: int) -> None:
    assert (encode_int(a) == encode_int(b)) == (a == b)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=8), st.binary(max_size=8), st.binary(max_size=8))
def test_any_two_way_split_is_distinct(a: bytes, b: bytes, c: bytes) -> None:
    # Splitting the same bytes a‖b‖c at two different points must give different transcripts.
    whole = a + b + c
    first, second = len(a), len(a) + len(b)
    assume(first != second)

    def split_at(k: int) -> Builder:
        return steps(lambda t: t.append_bytes("m", whole[:k]),
                     lambda t: t.append_bytes("m", whole[k:]))

    assert challenge(split_at(first)) != challenge(split_at(second))


def test_domain_tag_separates() -> None:
    def build(t: Transcript) -> None:
        t.append_int("x", 42)

    assert challenge(build, "proof-a/v1") != challenge(build, "proof-b/v1")
    # The domain is framed too: "ab" cannot be confused with "a" plus a following item.
    assert challenge(build, "ab") != challenge(steps(lambda t: t.append_str("", "b"), build), "a")


def test_challenge_label_matters() -> None:
    t = Transcript("d")
    assert t.copy().challenge_bytes("e", 32) != t.copy().challenge_bytes("f", 32)
    assert t.copy().challenge_below("e", 2**128) != t.copy().challenge_below("f", 2**128)


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 255, 256, 257, 2**64 + 1, Q])
def test_challenge_below_in_range(bound: int) -> None:
    for i in range(60):
        t = Transcript("range")
        t.append_int("i", i)
        assert 0 <= t.challenge_below("e", bound) < bound


def test_challenge_below_rejects_nonpositive_bound() -> None:
    for bound in (0, -1):
        with pytest.raises(ValueError):
            Transcript("d").challenge_below("e", bound)


def test_challenge_below_is_roughly_uniform() -> None:
    counts: Counter[int] = Counter()
    for i in range(3000):
        t = Transcript("uniformity")
        t.append_int("i", i)
        counts[t.challenge_below("e", 3)] += 1
    assert set(counts) == {0, 1, 2}
    assert min(counts.values()) >= 800, counts


def test_challenge_below_covers_large_range() -> None:
    # With bound just above a power of two most draws are rejected; the result still
    # spreads across the range (top half appears) rather than sticking to the low part.
    bound = 2**255 + 1
    values = []
    for i in range(200):
        t = Transcript("large")
        t.append_int("i", i)
        values.append(t.challenge_below("e", bound))
    assert all(0 <= v < bound for v in values)
    assert any(v >= 2**254 for v in values)
    assert any(v < 2**254 for v in values)


def test_challenge_signed_in_closed_range() -> None:
    seen_neg = seen_pos = False
    for i in range(300):
        t = Transcript("signed")
        t.append_int("i", i)
        e = t.challenge_signed("e", Q)
        assert -Q <= e <= Q
        seen_neg |= e < 0
        seen_pos |= e > 0
    assert seen_neg and seen_pos


def test_challenge_signed_small_bound_hits_both_ends() -> None:
    seen = set()
    for i in range(200):
        t = Transcript("signed-small")
        t.append_int("i", i)
        seen.add(t.challenge_signed("e", 1))
    assert seen == {-1, 0, 1}


def test_challenge_bits() -> None:
    t = Transcript("bits")
    bits = t.challenge_bits("e", 128)
    assert len(bits) == 128
    assert set(bits) == {0, 1}
    assert len(Transcript("bits").challenge_bits("e", 13)) == 13


CTX = ProofContext(session_id=b"\x11" * 32, prover=2, round="aux_info/2")


def proof_challenge(ctx: ProofContext, domain: str = "zk/sch/v1") -> int:
    t = ctx.transcript(domain)
    t.append_int("X", 99)
    return t.challenge_below("e", Q)


def test_proof_context_is_deterministic() -> None:
    same = ProofContext(session_id=b"\x11" * 32, prover=2, round="aux_info/2")
    assert proof_challenge(CTX) == proof_challenge(same)


@pytest.mark.parametrize(
    "other",
    [
        ProofContext(session_id=b"\x11" * 31 + b"\x12", prover=2, round="aux_info/2"),
        ProofContext(session_id=b"\x11" * 31, prover=2, round="aux_info/2"),
        ProofContext(session_id=b"\x11" * 32, prover=3, round="aux_info/2"),
        ProofContext(session_id=b"\x11" * 32, prover=-2, round="aux_info/2"),
        ProofContext(session_id=b"\x11" * 32, prover=2, round="aux_info/3"),
        ProofContext(session_id=b"\x11" * 32, prover=2, round="presign/2"),
    ],
    ids=["session-byte", "session-length", "prover", "prover-sign", "round", "round-name"],
)
def test_proof_context_binds_each_field(other: ProofContext) -> None:
    assert proof_challenge(CTX) != proof_challenge(other)


def test_proof_context_binds_proof_domain() -> None:
    assert proof_challenge(CTX, "zk/sch/v1") != proof_challenge(CTX, "zk/enc/v1")


class SessionIdArgs(TypedDict):
    """The arguments of session_id, by name."""

    protocol: str
    key_id: bytes
    parties: list[int]
    public_params: bytes
    nonce: bytes


SID_ARGS: SessionIdArgs = {
    "protocol": "keygen",
    "key_id": b"key-1",
    "parties": [1, 2, 3],
    "public_params": b"params",
    "nonce": b"\x00" * 16,
}


def test_session_id_is_32_deterministic_bytes() -> None:
    sid = session_id(**SID_ARGS)
    assert len(sid) == 32
    assert sid == session_id(**SID_ARGS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("protocol", "presign"),
        ("key_id", b"key-2"),
        ("parties", [1, 2]),
        ("parties", [1, 2, 3, 0]),
        ("parties", [1, 3, 2]),
        ("parties", [12, 3]),
        ("parties", [0x010002, 3]),
        ("public_params", b"params2"),
        ("nonce", b"\x00" * 15 + b"\x01"),
        ("nonce", b"\x00" * 17),
    ],
)
def test_session_id_binds_each_input(field: str, value: object) -> None:
    changed = {**SID_ARGS, field: value}
    assert session_id(**changed) != session_id(**SID_ARGS)  # type: ignore[arg-type]


def test_session_id_fields_do_not_bleed() -> None:
    a: SessionIdArgs = {**SID_ARGS, "key_id": b"ab", "public_params": b"c"}
    b: SessionIdArgs = {**SID_ARGS, "key_id": b"a", "public_params": b"bc"}
    assert session_id(**a) != session_id(**b)
