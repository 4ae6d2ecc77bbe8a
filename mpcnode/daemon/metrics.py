"""Prometheus metrics of a signer node (one registry per node, no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Counter("mpcnode_sessions_total", "Protocol sessions by outcome",
                                ["protocol", "outcome"], registry=self.registry)
        self.failures = Counter("mpcnode_failures_total",
                                "Aborted sessions and refused requests by culprit",
                                ["culprit"], registry=self.registry)
        self.signatures = Counter("mpcnode_signature_shares_total",
                                  "Signature shares released", registry=self.registry)
        self.refusals = Counter("mpcnode_policy_refusals_total",
                                "Sign requests the node's own policy check refused",
                                registry=self.registry)
        self.pool = Gauge("mpcnode_presignatures_available", "Unused presignatures",
                          ["key_id"], registry=self.registry)
        self.latency = Histogram("mpcnode_rpc_seconds", "RPC latency", ["method"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30, 60))
        self.active = Gauge("mpcnode_active_sessions", "Sessions in progress",
                            registry=self.registry)
