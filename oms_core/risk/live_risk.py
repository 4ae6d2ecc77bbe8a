"""The risk report's input from the live configuration of one OMS instance.

Threshold and node count, the admins and their quorum come from cluster.toml; the policy
is the one the OMS holds active (its database, read-only), else the bootstrap bundle it
will adopt. What is not configured is reported as missing, never assumed: an asset priced
by the fixed table has one source and no staleness or deviation check, an asset with
[oracles] sources has those checks; simulation before signing runs only with a [chain],
and circuit breakers exist for the protocols of its [[chain.watches]]. Approvals are
WebAuthn assertions that every signer node verifies.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

from mpcnode.ceremony.cluster_file import ClusterConfig
from oms_core.app.oms_config import OmsSettings
from oms_core.oms_core_errors import OmsCoreError
from oms_core.risk.risk_config import OracleSettings, RiskConfig
from zero_trust.policy.bundle import bundle_from_json
from zero_trust.policy.document import Policy


class NoPolicyError(OmsCoreError):
    """The instance has no policy yet, so there is nothing to assess."""


def active_policy(settings: OmsSettings) -> Policy:
    """The OMS's active policy, else its bootstrap bundle's."""
    if settings.db.is_file():
        uri = f"{settings.db.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            try:
                row = conn.execute("SELECT bundle FROM policy_bundles "
                                   "WHERE status = 'active'").fetchone()
            except sqlite3.OperationalError:  # no policy table yet
                row = None
        if row is not None:
            return bundle_from_json(bytes(row[0]))[0].policy
    if settings.bootstrap_bundle is not None:
        return bundle_from_json(settings.bootstrap_bundle.read_bytes())[0].policy
    raise NoPolicyError(f"{settings.db} holds no active policy and {settings.path} names no "
                        "bootstrap bundle")


def live_risk_config(settings: OmsSettings, cluster: ClusterConfig,
                     policy: Policy) -> RiskConfig:
    listed = {a.symbol for a in policy.assets}
    oracles = {symbol: OracleSettings(sources=1, max_staleness_seconds=None,
                                      max_deviation_bps=None)
               for symbol in sorted(settings.prices) if symbol in listed}
    o = settings.oracles
    for symbol in sorted({s.asset for s in o.sources} if o else set()):
        assert o is not None
        oracles[symbol] = OracleSettings(
            sources=sum(s.asset == symbol for s in o.sources),
            max_staleness_seconds=max(1, int(o.max_staleness_s)),
            max_deviation_bps=o.max_deviation_bps)
    chain = settings.chain
    return RiskConfig(
        threshold=cluster.threshold, parties=len(cluster.nodes), policy=policy,
        admins=len(cluster.admins), admin_quorum=cluster.admin_quorum,
        webauthn_approvals=True, oracles=oracles,
        simulation_before_signing=chain is not None,
        circuit_breakers=frozenset(w.protocol for w in chain.watches) if chain else frozenset(),
        wallet_value_usd=settings.wallet_value_usd)
