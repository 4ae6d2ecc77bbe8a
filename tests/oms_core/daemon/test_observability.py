"""The head tracker behind the chain-head metrics (lag against the highest head among the
endpoints, age since each head last changed, a down endpoint keeping its last head), and
the breaker gauge (every watched protocol, paused or not)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from oms_core.app.circuit_breakers import CircuitBreakers, TvlWatch
from oms_core.app.oms_db import open_database
from oms_core.app.service import OmsCore
from oms_core.daemon.observability import EndpointHead, HeadTracker, OmsMetrics
from testing.table_audit import TableAudit


def test_lag_and_age_follow_each_endpoint() -> None:
    t = HeadTracker()
    assert t.observe({"a": 10, "b": 8}, now=100.0) == {
        "a": EndpointHead(True, 10, 0, 0.0), "b": EndpointHead(True, 8, 2, 0.0)}
    assert t.observe({"a": 12, "b": 8}, now=105.0) == {
        "a": EndpointHead(True, 12, 0, 0.0), "b": EndpointHead(True, 8, 4, 5.0)}
    # b goes down: it keeps its last head, its lag grows with a's head, its age with time.
    assert t.observe({"a": 13, "b": None}, now=107.0) == {
        "a": EndpointHead(True, 13, 0, 0.0), "b": EndpointHead(False, 8, 5, 7.0)}
    # b catches up and moves ahead.
    assert t.observe({"a": 13, "b": 14}, now=108.0) == {
        "a": EndpointHead(True, 13, 1, 1.0), "b": EndpointHead(True, 14, 0, 0.0)}


def test_an_endpoint_never_seen_has_no_head() -> None:
    t = HeadTracker()
    assert t.observe({"a": None, "b": None}, now=1.0) == {
        "a": EndpointHead(False, None, None, None), "b": EndpointHead(False, None, None, None)}
    assert t.observe({"a": 3, "b": None}, now=2.0)["b"] == EndpointHead(False, None, None,
                                                                          None)


def test_breaker_gauge_lists_watched_protocols_running_and_paused(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "oms.sqlite3")
    try:
        watches = [TvlWatch(p, lambda: Decimal(1), Decimal("0.5"), 60) for p in ("a", "b")]
        breakers = CircuitBreakers(conn, TableAudit(), watches)
        breakers.pause("b", by="rita", reason="incident", at=1.0)
        breakers.pause("manual-only", by="rita", reason="incident", at=1.0)
        core = SimpleNamespace(breakers=breakers,
                               requests=SimpleNamespace(count_by_state=lambda: {}))
        metrics = OmsMetrics(lambda fn: fn(cast(OmsCore, core)))
        read = metrics.registry.get_sample_value
        assert read("oms_circuit_breaker_open", {"protocol": "a"}) == 0
        assert read("oms_circuit_breaker_open", {"protocol": "b"}) == 1
        assert read("oms_circuit_breaker_open", {"protocol": "manual-only"}) == 1
    finally:
        conn.close()
