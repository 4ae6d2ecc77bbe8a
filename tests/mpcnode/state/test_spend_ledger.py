"""A node's per-initiator spend ledger returns exactly the entries after a time, for any
order of additions, repeats and pruning."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.state.spend_ledger import SpendLedger

ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 30), st.integers(0, 500), st.integers(0, 10**6)),
    st.tuples(st.just("read"), st.integers(0, 30), st.integers(0, 500), st.just(0)),
    st.tuples(st.just("forget"), st.integers(0, 30), st.integers(0, 500), st.just(0)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_entries_match_a_plain_filter(steps: list[tuple[str, int, int, int]]) -> None:
    ledger = SpendLedger()
    plain: dict[str, tuple[float, Decimal]] = {}
    for op, ident, time, cents in steps:
        entry = f"r{ident}"
        if op == "add":
            ledger.add(entry, float(time), Decimal(cents) / 100)
            plain.setdefault(entry, (float(time), Decimal(cents) / 100))
        elif op == "forget":
            ledger.forget_before(float(time))
            plain = {k: v for k, v in plain.items() if v[0] > time}
        got = ledger.entries(after=float(time))
        assert [at for _, at, _ in got] == sorted(at for _, at, _ in got)
        assert {rid: (at, usd) for rid, at, usd in got} == {
            k: v for k, v in plain.items() if v[0] > time}
        assert len(ledger) == len(plain) and sorted(ledger.ids()) == sorted(plain)
        assert all((k in ledger) for k in plain)


def test_edges_and_repeats() -> None:
    ledger = SpendLedger()
    ledger.add("a", 0.0, Decimal(5))
    ledger.add("a", 50.0, Decimal(7))  # the same id again: ignored
    ledger.add("b", 60.0, Decimal(1))
    assert ledger.entries(after=-1.0) == [("a", 0.0, Decimal(5)), ("b", 60.0, Decimal(1))]
    assert ledger.entries(after=0.0) == [("b", 60.0, Decimal(1))]  # at exactly: outside
    ledger.forget_before(0.0)
    assert "a" not in ledger and "b" in ledger
