"""The write-then-read spend quorum (``zero_trust/spend_quorum.py``): its statements, its
quorum rule, its union, and the property it exists for — checked on a model of n honest
nodes driven by a hostile scheduler that picks every quorum, order and interleaving."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from zero_trust.spend_quorum import (
    WINDOW_S,
    SpendEntry,
    SpendQuorumError,
    SpendSubject,
    SpendView,
    check_quorum,
    parse_view,
    receipt_statement,
    union_usage,
    view_statement,
    write_quorum,
)

SUBJECT = SpendSubject(b"\x01" * 32, "req-1", b"\x02" * 32, "tina")


def view(party: int, receipts: tuple[int, ...], *entries: SpendEntry,
         subject: SpendSubject = SUBJECT) -> SpendView:
    return parse_view(view_statement(party, subject, receipts, entries))


def test_statements_name_the_domain_the_node_and_the_spend() -> None:
    receipt = receipt_statement(3, SUBJECT)
    assert b'"domain":"mpcnode/spend-receipt/v1"' in receipt and b'"party":3' in receipt
    assert receipt != receipt_statement(3, SpendSubject(b"\x01" * 32, "req-2", b"\x02" * 32,
                                                        "tina"))
    v = view(2, (3, 1, 2), SpendEntry("a", Decimal("9000.5"), 1700000000))
    assert v.receipts == (1, 2, 3) and v.entries[0].usd == Decimal("9000.5")


@pytest.mark.parametrize("mangle", [
    lambda s: s.replace(b'"9000"', b'"9000.0"'),  # not the canonical amount
    lambda s: s.replace(b'"9000"', b'"-1"'),
    lambda s: s.replace(b'"9000"', b'"NaN"'),
    lambda s: s.replace(b":", b": ", 1),  # whitespace
    lambda s: s.replace(b"spend-view", b"spend-receipt"),
    lambda s: s[:-1],
    lambda s: b"[" * 100_000,
])
def test_a_view_in_any_other_form_is_refused(mangle: object) -> None:
    good = view_statement(1, SUBJECT, (1, 2), [SpendEntry("a", Decimal(9000), 5)])
    with pytest.raises(SpendQuorumError):
        parse_view(mangle(good))  # type: ignore[operator]


def test_quorum_sizes_intersect_for_every_cluster_shape() -> None:
    for n in range(1, 9):
        for t in range(1, n + 1):
            assert write_quorum(n, t) + t == n + 1


def test_check_quorum_names_what_is_missing() -> None:
    ok = [view(2, (1, 2, 3)), view(3, (1, 2, 3))]
    check_quorum(5, 3, 1, [1, 2, 3], ok, SUBJECT)
    with pytest.raises(SpendQuorumError, match=r"recorded by 2 node\(s\) \[1, 2\]"):
        check_quorum(5, 3, 1, [1, 2], ok, SUBJECT)
    with pytest.raises(SpendQuorumError, match="ledger views from 1 other node"):
        check_quorum(5, 3, 1, [1, 2, 3], ok[:1], SUBJECT)
    with pytest.raises(SpendQuorumError, match="ledger views from 1 other node"):
        check_quorum(5, 3, 2, [1, 2, 3], ok, SUBJECT)  # its own view counts once
    with pytest.raises(SpendQuorumError, match=r"attests receipts \[1, 2, 3, 4\]"):
        check_quorum(5, 3, 1, [1, 2, 3], [view(2, (1, 2, 3, 4)), ok[1]], SUBJECT)
    other = SpendSubject(SUBJECT.key_id, "req-2", SUBJECT.digest, "tina")
    with pytest.raises(SpendQuorumError, match="for another request"):
        check_quorum(5, 3, 1, [1, 2, 3], [view(2, (1, 2, 3), subject=other), ok[1]], SUBJECT)


def test_union_counts_each_request_once_in_the_window() -> None:
    now = 10 * WINDOW_S
    a = SpendEntry("a", Decimal(100), now - 10)
    views = [view(2, (1,), a, SpendEntry("b", Decimal(50), now - WINDOW_S + 1)),
             view(3, (1,), a, SpendEntry("old", Decimal(7), now - WINDOW_S))]
    assert union_usage(views, [a], now=now, excluding="") == 150
    assert union_usage(views, [a], now=now, excluding="a") == 50
    # One request reported at two times counts at the later one (the safe side).
    late = SpendEntry("old", Decimal(7), now - 5)
    assert union_usage(views, [late], now=now, excluding="a") == 57


# --- the property, on a model -----------------------------------------------------------------

LIMIT = Decimal(20_000)


@dataclass
class Model:
    """n honest nodes following the node's rules exactly (``mpcnode/daemon/node.py``),
    with the real quorum check and union; a hostile scheduler drives them."""

    n: int
    t: int
    ledgers: dict[int, dict[str, SpendEntry]] = field(default_factory=dict)
    receipts: dict[str, set[int]] = field(default_factory=dict)
    views: dict[str, list[SpendView]] = field(default_factory=dict)
    released: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ledgers = {i: {} for i in range(1, self.n + 1)}

    def usage(self, node: int, rid: str, views: list[SpendView]) -> Decimal:
        return union_usage(views, self.ledgers[node].values(), now=0, excluding=rid)

    def reserve(self, rid: str, usd: Decimal, node: int) -> None:
        if self.usage(node, rid, []) + usd <= LIMIT:  # authorized against its own ledger
            self.ledgers[node][rid] = SpendEntry(rid, usd, 0)
            self.receipts.setdefault(rid, set()).add(node)

    def read(self, rid: str, node: int, shown: set[int]) -> None:
        subject = SpendSubject(SUBJECT.key_id, rid, SUBJECT.digest, "tina")
        if len(shown) >= write_quorum(self.n, self.t):
            self.views.setdefault(rid, []).append(
                view(node, tuple(sorted(shown)), *self.ledgers[node].values(), subject=subject))

    def sign(self, rid: str, usd: Decimal, node: int, shown: set[int],
             views: list[SpendView]) -> None:
        subject = SpendSubject(SUBJECT.key_id, rid, SUBJECT.digest, "tina")
        try:
            check_quorum(self.n, self.t, node, sorted(shown), views, subject)
        except SpendQuorumError:
            return
        if self.usage(node, rid, views) + usd <= LIMIT:
            self.ledgers[node][rid] = SpendEntry(rid, usd, 0)
            self.released.setdefault(rid, set()).add(node)


@pytest.mark.parametrize("n,t", [(3, 2), (4, 2), (4, 3), (5, 2), (5, 3), (5, 4)])
def test_no_interleaving_of_quorums_gets_more_than_the_limit_signed(n: int, t: int) -> None:
    """Five 9,000 USD requests against 20,000 USD, 200 random schedules per cluster shape:
    each request recorded at its own set of W or more nodes, read at its own t nodes,
    signed at its own t nodes (sets chosen independently, often disjoint), and the three
    phases of all requests interleaved at random, one node at a time. At most two requests
    get σ_i from t nodes."""
    w = write_quorum(n, t)
    for seed in range(200):
        rng = random.Random(seed)
        model = Model(n, t)
        usd = Decimal(9000)
        plans = {}
        for k in range(5):
            reserve = rng.sample(range(1, n + 1), rng.randint(w, n))
            plans[f"r{k}"] = [("reserve", i) for i in reserve] + \
                [("read", i) for i in rng.sample(range(1, n + 1), t)] + \
                [("sign", i) for i in rng.sample(range(1, n + 1), t)]
        while plans:
            rid = rng.choice(sorted(plans))
            step, node = plans[rid].pop(0)
            if not plans[rid]:
                del plans[rid]
            shown = model.receipts.get(rid, set())
            if step == "reserve":
                model.reserve(rid, usd, node)
            elif step == "read":
                model.read(rid, node, shown)
            else:
                model.sign(rid, usd, node, shown, model.views.get(rid, []))
        signed = [rid for rid, who in model.released.items() if len(who) >= t]
        assert len(signed) * usd <= LIMIT, (seed, signed)


def spread(model: Model, order: Sequence[tuple[int, ...]]) -> list[str]:
    """Each request recorded, read and signed at its own subset only (the least any node
    learns); the requests that got σ_i from the whole subset."""
    for k, subset in enumerate(order):
        rid, usd = f"r{k}", Decimal(9000)
        for i in subset:
            model.reserve(rid, usd, i)
        shown = model.receipts.get(rid, set())
        for i in subset:
            model.read(rid, i, shown)
        for i in subset:
            model.sign(rid, usd, i, shown, model.views.get(rid, []))
    return [rid for rid, who in model.released.items() if len(who) >= model.t]


SUBSETS_3_OF_5 = list(itertools.combinations(range(1, 6), 3))


def test_orders_of_all_ten_subsets_of_a_3_of_5_key() -> None:
    """The order that gets three transfers past nodes that each count only their own
    (every node in at most two subsets), and 300 random orders of all ten subsets:
    two 9,000 USD transfers sign, never a third."""
    greedy = [(1, 2, 3), (3, 4, 5), (1, 2, 4)] + [s for s in SUBSETS_3_OF_5
                                                  if s not in ((1, 2, 3), (3, 4, 5), (1, 2, 4))]
    orders = [greedy] + [random.Random(seed).sample(SUBSETS_3_OF_5, 10) for seed in range(300)]
    for order in orders:
        assert len(spread(Model(5, 3), order)) == 2, order
