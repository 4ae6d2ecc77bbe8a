"""The rolling window's running sum equals the plain sum over the window, for any order
of entries, checks and clock moves (including backwards) and any pruning."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from mpcnode.state.rolling_window import RollingWindow

LENGTH = 100.0
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 30), st.integers(0, 500), st.integers(0, 10**6)),
    st.tuples(st.just("total"), st.integers(0, 30), st.integers(0, 500), st.just(0)),
    st.tuples(st.just("forget"), st.integers(0, 30), st.integers(0, 500), st.just(0)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_running_sum_matches_the_plain_sum(steps: list[tuple[str, int, int, int]]) -> None:
    window = RollingWindow(LENGTH)
    plain: dict[str, tuple[float, Decimal]] = {}
    for op, ident, time, cents in steps:
        entry = f"r{ident}"
        if op == "add":
            window.add(entry, float(time), Decimal(cents) / 100)
            plain.setdefault(entry, (float(time), Decimal(cents) / 100))
        elif op == "forget":
            window.forget_before(float(time))
            plain = {k: v for k, v in plain.items() if v[0] > time}
        for excluding in ("", entry):
            expected = sum((amount for k, (at, amount) in plain.items()
                            if at > time - LENGTH and k != excluding), Decimal(0))
            assert window.total(float(time), excluding) == expected
        assert len(window) == len(plain) and sorted(window.ids()) == sorted(plain)


def test_window_edges_and_repeats() -> None:
    window = RollingWindow(LENGTH)
    window.add("a", 0.0, Decimal(5))
    window.add("a", 50.0, Decimal(7))  # the same id again: ignored
    window.add("b", 60.0, Decimal(1))
    assert window.total(99.0) == 6
    assert window.total(100.0) == 1  # at exactly now - length: outside
    assert window.total(100.0, excluding="b") == 0
    assert window.total(10.0) == 6  # the clock went back: "a" is inside again
    assert "a" in window and "c" not in window
