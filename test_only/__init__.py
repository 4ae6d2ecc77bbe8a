"""TEST AND DEMO ONLY: every switch that weakens a protection lives here.

Seeded randomness, the crash hook, bare-digest signing without approvals, acceptance of
public TEST MATERIAL primes, and the software authenticator whose private key sits in a
clear PEM file: each would break the system's guarantees in production, so none of them
is in a production module. Production modules offer neutral injection points (a hook,
a strategy object) and never import this package; ``mpcnode serve`` and ``oms serve``
refuse to run when it is loaded (``mpcnode.daemon.production_fence``), and a node started
through the test entry point (``python -m test_only.node_daemon``) logs every active
switch and reports it in ``Info``.
"""
