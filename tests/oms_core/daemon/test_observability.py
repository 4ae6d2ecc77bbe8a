"""The head tracker behind the chain-head metrics: lag against the highest head among the
endpoints, age since each head last changed, a down endpoint keeping its last head."""

from __future__ import annotations

from oms_core.daemon.observability import EndpointHead, HeadTracker


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
